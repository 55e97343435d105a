"""The recurrent convolutional network for video: a grid of recurrent conv layers over (layer, time).

The state of layer l at time t depends on layer l-1 at time t and on layer l at time t-1; weights differ between
layers and are shared over time. The model is causal: the output at time t never depends on frames after t
(with BatchNorm in eval mode; in train mode the stem's BatchNorm, and the recurrent layers' input BatchNorm that the
builders turn on by default, share batch statistics across frames).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from vidrcnn.layers import ConvRecurrent, PerFrame, RecurrentCell, State
from vidrcnn.layers.conv_recurrent import recomputed
from vidrcnn.models.backbones import STEM_DOWNSAMPLE, STEM_FIRST_DOWNSAMPLE, STEM_FRAMES, CausalStem, build_stem
from vidrcnn.models.registry import register_model

HEADS = ("last", "mean", "steps")


class StreamState(NamedTuple):
    """What :meth:`RCN.stream` carries from one chunk to the next."""

    layers: list[State]  # one cell state per recurrent layer
    pooled_sum: Tensor | None  # (B, C) sum of the pooled features so far (the running mean of a "mean" head)
    steps: int | Tensor  # frames seen so far (a tensor in an exported streaming step)
    stem: Tensor | None = None  # a CausalStem's last input frames (stem_frames > 1), else None


class RCN(nn.Module):
    """Recurrent convolutional network: per-frame 2-D ``stem`` -> recurrent layers (``ConvRecurrent`` with
    ``cell``, widths ``channels``, a per-frame 2x2 max pool after layer i where ``pool_after[i]``) -> spatial
    average of the top layer's output -> dropout -> linear.

    ``head="last"``: clip logits from the last time step; ``head="mean"``: from the mean over time of the pooled
    features (the layer is linear, so this is also the mean of the per-step logits); ``head="steps"``: the last
    step's logits in eval, and in training the logits of every step ``(B, T, K)``, so that the loss is put on every
    step (LRCN's per-step supervision; the engine averages the cross-entropy over steps).
    ``residual=True``: each recurrent layer's output is added to its input (through a bias-free per-frame 1x1
    convolution where the widths differ), before the pooling; the sum is still causal.
    ``stem`` is a 2-D module applied to every frame, or a :class:`~vidrcnn.models.backbones.CausalStem` (time in
    its first layer, ``stem_frames > 1``), which carries its last input frames in the stream state.
    ``checkpoint_every=k``: gradient checkpointing over time in training (:class:`ConvRecurrent`): each recurrent
    layer recomputes its time loop in chunks of ``k`` steps in backward, and the stem and the layers' input
    convolutions recompute their per-frame activations; same gradients, less memory, one more forward of compute.
    ``forward(x)``: ``(B, C, T, H, W) -> (B, num_classes)``. :meth:`stream` gives per-frame logits and a state.
    """

    is_causal = True

    def __init__(self, *, num_classes: int, cell: str | type[RecurrentCell], stem: nn.Module, stem_channels: int,
                 channels: Sequence[int], pool_after: Sequence[bool] | None = None, kernel_size: int = 3,
                 head: str = "last", dropout: float = 0.0, batch_input_conv: bool = True,
                 residual: bool = False, checkpoint_every: int | None = None, cell_kwargs: dict | None = None):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        pool_after = list(pool_after) if pool_after is not None else [False] * len(channels)
        if len(pool_after) != len(channels):
            raise ValueError("pool_after needs one entry per recurrent layer")
        self.head = head
        self.checkpoint_every = checkpoint_every
        self.stem = stem if isinstance(stem, CausalStem) else PerFrame(stem)
        self.layers = nn.ModuleList()
        self.pools = nn.ModuleList()
        self.skips = nn.ModuleList() if residual else None
        c_in = stem_channels
        for c, pool in zip(channels, pool_after):
            self.layers.append(ConvRecurrent(c_in, c, cell=cell, kernel_size=kernel_size,
                                             batch_input_conv=batch_input_conv, checkpoint_every=checkpoint_every,
                                             **(cell_kwargs or {})))
            if self.skips is not None:  # a (1, 1, 1) kernel sees one frame: a per-frame 1x1 projection
                self.skips.append(nn.Identity() if c == c_in else nn.Conv3d(c_in, c, 1, bias=False))
            # (1, 2, 2) pooling acts on each frame alone, so it keeps the model causal.
            self.pools.append(nn.MaxPool3d((1, 2, 2)) if pool else nn.Identity())
            c_in = c
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_in, num_classes)

    def features(self, x: Tensor, states: Sequence[State | None] | None = None,
                 stem_past: Tensor | None = None) -> tuple[Tensor, list[State], Tensor | None]:
        """Pooled top-layer features per frame ``(B, T, C)``, the layer states after the last frame, and the causal
        stem's past frames (None for a per-frame stem)."""
        stem = self.stem  # with checkpoint_every, in training: its per-frame activations recomputed in backward
        if self.checkpoint_every and self.training and torch.is_grad_enabled():
            stem = functools.partial(recomputed, self.stem, self.stem)
        if isinstance(self.stem, CausalStem):
            y, stem_past = stem(x, stem_past)  # (B, C0, T, H', W')
        else:
            y = stem(x)
        states = list(states) if states is not None else [None] * len(self.layers)
        new_states = []
        for i, (layer, pool, s) in enumerate(zip(self.layers, self.pools, states)):
            h, s = layer(y, s)
            y = pool(h if self.skips is None else h + self.skips[i](y))
            new_states.append(s)
        return y.mean(dim=(3, 4)).transpose(1, 2), new_states, stem_past  # (B, T, C)

    def forward(self, x: Tensor) -> Tensor:
        pooled, _, _ = self.features(x)
        if self.head == "steps" and self.training:
            return self.fc(self.dropout(pooled))  # (B, T, K): a loss on every step
        feat = pooled.sum(dim=1) / pooled.shape[1] if self.head == "mean" else pooled[:, -1]
        return self.fc(self.dropout(feat))

    def stream(self, x: Tensor, state: StreamState | None = None) -> tuple[Tensor, StreamState]:
        """Per-frame logits ``(B, T, num_classes)`` for the chunk ``x`` ``(B, C, T, H, W)`` continuing from
        ``state``. Chunk after chunk with the returned state equals one call on the whole clip; the last frame's
        logits equal ``forward`` on the clip so far (for ``head="mean"`` they are the running mean)."""
        state = state or StreamState([None] * len(self.layers), None, 0)
        pooled, layer_states, stem_past = self.features(x, state.layers, state.stem)
        t = pooled.shape[1]
        if self.head == "mean":
            csum = pooled.cumsum(dim=1)
            if state.pooled_sum is not None:
                csum = csum + state.pooled_sum.unsqueeze(1)
            # ``steps`` is an int, or a tensor in an exported step (vidrcnn/inference/export.py): the same sum either way.
            counts = (state.steps + torch.arange(1, t + 1, device=x.device)).to(pooled.dtype)
            feats, pooled_sum = csum / counts.view(1, t, 1), csum[:, -1]
        else:
            feats, pooled_sum = pooled, None
        return self.fc(self.dropout(feats)), StreamState(layer_states, pooled_sum, state.steps + t, stem_past)


# Sizes: "s" for <= 64x64 frames (trains in minutes on 2 CPU cores), "m" for UCF101 at 112x112. The small stem
# brings frames down 4x (64 -> 16 px, 112 -> 28 px) before the recurrent layers. Widths differ per cell so that
# every cell gets about the same parameter and FLOP budget (a GRU layer has 3x, an LSTM layer 4x the convolutions
# of an RNN layer of the same width): differences between cells are then not bought with size.
RCN_CONFIGS: dict[str, dict] = {
    "s": {"stem_widths": (16, 32), "stem_strides": (2, 2), "pool_after": (True, False),
          "channels": {"rnn": (80, 104), "rcl": (80, 104), "gru": (48, 64), "lstm": (40, 56), "mingru": (96, 128)}},
    "m": {"stem_widths": (32, 64), "stem_strides": (2, 2), "pool_after": (True, True, False),
          "channels": {"rnn": (104, 200, 304), "rcl": (104, 200, 304), "gru": (64, 128, 192),
                       "lstm": (56, 112, 168), "mingru": (128, 256, 384)}},
}


def default_widths(cell: str, size: str, cell_kwargs: Mapping[str, Any]) -> Sequence[int]:
    """The recurrent widths of ``rcn_<cell>_<size>``: the cell's entry in :data:`RCN_CONFIGS`; a coupled ConvLSTM
    (``coupled=True``: three gates, as the ConvGRU) gets the ConvGRU's, and so its parameters; a cell without an entry
    (e.g. one added later) the vanilla cell's (two convolutions per step)."""
    widths = RCN_CONFIGS[size]["channels"]
    if cell == "lstm" and cell_kwargs.get("coupled"):
        cell = "gru"
    return widths.get(cell, widths["rnn"])


def _rcn(cell: str, size: str, *, num_classes: int, head: str, stem: str, stem_weights: str | os.PathLike | None,
         resnet_stage: int, channels: Sequence[int] | None, dropout: float, batch_input_conv: bool,
         stem_strides: Sequence[int] | None, stem_frames: int | None, stem_downsample: str | None,
         stem_first_downsample: str | None, residual: bool,
         checkpoint_every: int | None, cell_kwargs: dict) -> RCN:
    cfg = RCN_CONFIGS[size]
    stem_module, stem_channels = build_stem(stem, widths=cfg["stem_widths"], strides=cfg["stem_strides"],
                                            resnet_stage=resnet_stage, weights=stem_weights,
                                            stem_strides=stem_strides, frames=stem_frames,
                                            downsample=stem_downsample, first_downsample=stem_first_downsample)
    pool_after = cfg["pool_after"]
    if channels is None:
        channels = default_widths(cell, size, cell_kwargs)
    elif len(channels) != len(pool_after):  # a custom depth: pool after every layer but the last
        pool_after = [True] * (len(channels) - 1) + [False]
    return RCN(num_classes=num_classes, cell=cell, stem=stem_module, stem_channels=stem_channels, channels=channels,
               pool_after=pool_after, head=head, dropout=dropout, batch_input_conv=batch_input_conv,
               residual=residual, checkpoint_every=checkpoint_every, cell_kwargs=cell_kwargs)


# The cell options every rcn_* builder passes unless told otherwise, chosen by the ablations (docs/reports/rcn_design_choices.md,
# docs/reports/activation_and_stem_screen.md), with the builders' ``residual=True``: BatchNorm on the input pre-activations (and, with it,
# no norm on the state's), and a ReLU where the vanilla, GRU and LSTM cells have tanh (IRNN, Li-GRU;
# docs/reports/how_defaults_were_chosen.md, "a rectifying activation"). ``preact_norm=None, residual=False, activation="tanh"`` gives the models as they
# were before (the ablation's reference rows); the cells' own defaults stay off (Liang & Hu's RCNN uses them).
# Two initialisations too (so checkpoints are unaffected): the minGRU's update gate starts with chrono
# biases over the study's 16 frames (Tallec & Ollivier 2018), and the state kernel of the vanilla cell and of the RCL
# as the identity (IRNN, Le et al. 2015); docs/reports/how_defaults_were_chosen.md, "the state kernel as the identity". Liang & Hu's rcnn_k* keep theirs.
# The ConvGRU's and the ConvLSTM's candidate state kernels start as the identity too (docs/reports/time_to_accuracy.md: +1.5
# points for the ConvGRU, as in docs/reports/cheaper_stems_and_state_init.md). The ConvLSTM couples its input and forget gates (CIFG, at the
# ConvGRU's widths: docs/reports/time_to_accuracy.md, 87.0 ± 3.2 against 84.2 ± 5.0; with the ReLU its cell state cannot grow
# step after step), and the minGRU's small stem is the cheaper strided one, 3 frames (90.3 ± 1.4 against 88.7 ± 3.9
# there, 90.7 ± 2.4 in docs/reports/cheaper_stems_and_state_init.md). Older checkpoints rebuild as trained (engine.checkpoint.DEFAULT_CHANGES).
RELU_CELLS = ("rnn", "gru", "lstm")
INIT_DEFAULTS: dict[str, dict] = {"mingru": {"chrono": 16}, "rnn": {"state_init": "identity"},
                                  "rcl": {"state_init": "identity"}, "gru": {"state_init": "identity"},
                                  "lstm": {"state_init": "identity"}}
GATE_DEFAULTS: dict[str, dict] = {"lstm": {"coupled": True}}
STEM_DEFAULTS: dict[str, dict] = {"mingru": {"stem_frames": 3, "stem_downsample": "stride"}}  # with the small stem
CELL_DEFAULTS: dict[str, dict] = {cell: {"preact_norm": "batch", **({"activation": "relu"} if cell in RELU_CELLS else {}),
                                         **INIT_DEFAULTS.get(cell, {}), **GATE_DEFAULTS.get(cell, {})}
                                  for cell in ("rnn", "rcl", "gru", "lstm", "mingru")}


def make_rcn_builder(cell: str, size: str) -> Callable[..., RCN]:
    """The typed keyword-only builder of ``rcn_<cell>_<size>`` (register it with :func:`register_model`)."""
    def builder(*, num_classes: int = 101, head: str = "last", stem: str = "small",
                stem_weights: str | os.PathLike | None = None, resnet_stage: int = 2,
                channels: Sequence[int] | None = None, dropout: float = 0.0, batch_input_conv: bool = True,
                stem_strides: Sequence[int] | None = None, stem_frames: int | None = None,
                stem_downsample: str | None = None, stem_first_downsample: str | None = None,
                residual: bool = True, checkpoint_every: int | None = None, **cell_kwargs) -> RCN:
        stem_defaults = STEM_DEFAULTS.get(cell, {}) if stem == "small" else {}
        stem_frames = stem_defaults.get("stem_frames") if stem_frames is None else stem_frames
        stem_downsample = stem_defaults.get("stem_downsample") if stem_downsample is None else stem_downsample
        return _rcn(cell, size, num_classes=num_classes, head=head, stem=stem, stem_weights=stem_weights,
                    resnet_stage=resnet_stage, channels=channels, dropout=dropout,
                    batch_input_conv=batch_input_conv, stem_strides=stem_strides, stem_frames=stem_frames,
                    stem_downsample=stem_downsample, stem_first_downsample=stem_first_downsample,
                    residual=residual, checkpoint_every=checkpoint_every,
                    cell_kwargs={**CELL_DEFAULTS.get(cell, {}), **cell_kwargs})

    builder.__name__ = builder.__qualname__ = f"rcn_{cell}_{size}"
    widths = default_widths(cell, size, CELL_DEFAULTS.get(cell, {}))
    builder.__doc__ = (
        f"RCN with the {cell!r} cell, size {size!r} (recurrent widths {widths}). ``stem``: 'small' or 'resnet18' "
        "(truncated after ``resnet_stage``; ``stem_weights`` None, 'imagenet' or a local state_dict file); "
        f"``stem_strides`` replaces the small stem's {RCN_CONFIGS[size]['stem_strides']}; ``stem_frames=k > 1`` "
        "gives the small stem's first layer a causal k-frame kernel at full resolution (:class:`CausalStem`; "
        f"default {STEM_DEFAULTS.get(cell, {}).get('stem_frames', STEM_FRAMES)} with the small stem, 1 otherwise); "
        "``stem_downsample``: 'stride' or 'pool', how the small stem's later layers coarsen the grid (default "
        f"{STEM_DEFAULTS.get(cell, {}).get('stem_downsample', STEM_DOWNSAMPLE)!r}); ``stem_first_downsample``: the "
        "same for its first, causal layer ('pool': at full resolution, then a max pool; 'stride': a quarter of the "
        f"work; default {STEM_FIRST_DOWNSAMPLE!r}). ``checkpoint_every=k``: "
        "gradient checkpointing over time in chunks of k steps (training memory for compute; off by default). "
        "Extra keyword arguments go to the cell (e.g. norm='bn' for rcl, peephole=True or coupled=True for lstm, the "
        "latter at the ConvGRU's widths); the cell options "
        f"default to {CELL_DEFAULTS.get(cell, {})} (``preact_norm=None, residual=False, stem_frames=1, "
        "stem_downsample='stride'``, ``activation='tanh'`` for the cells that have it, ``chrono=None`` for the "
        "minGRU, ``state_init='default'`` for the cells with a state kernel and ``coupled=False`` for the ConvLSTM: "
        "the model before the ablations).")
    return builder


for _cell in ("rnn", "rcl", "gru", "lstm", "mingru"):
    for _size in ("s", "m"):
        register_model()(make_rcn_builder(_cell, _size))
