"""Per-frame 2-D parts shared by the model families: a small conv stem, a truncated ResNet-18, plain conv stages.

Every model family builds its 2-D front from here, so the RCN, CNN+LSTM and frame-average models see frames through
the same kind of network.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from vidrcnn.errors import CheckpointError
from vidrcnn.layers.fold import can_fold
from vidrcnn.layers.per_frame import PerFrame


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv2d (no bias, BN follows) + BatchNorm2d + ReLU, 'same' padding."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


STEM_DOWNSAMPLES = ("stride", "pool")


def small_stem(widths: Sequence[int], strides: Sequence[int], *, in_channels: int = 3,
               kernel_size: int = 3, downsample: str = "stride") -> tuple[nn.Sequential, int]:
    """A stack of conv-BN-ReLU layers; returns ``(module, out_channels)``. A layer with stride ``s > 1`` is a
    strided convolution (``downsample="stride"``), or a convolution at its input's resolution followed by an
    ``s`` x ``s`` max pool (``"pool"``, as C3D and VGG do: the layer's output is computed at every position before
    the grid is coarsened, at ``s**2`` times the layer's FLOPs)."""
    if downsample not in STEM_DOWNSAMPLES:
        raise ValueError(f"stem_downsample must be one of {STEM_DOWNSAMPLES}, got {downsample!r}")
    layers: list[nn.Module] = []
    c = in_channels
    for w, s in zip(widths, strides, strict=True):
        if downsample == "pool" and s > 1:
            layers.append(nn.Sequential(*conv_bn_relu(c, w, kernel_size, 1), nn.MaxPool2d(s)))
        else:
            layers.append(conv_bn_relu(c, w, kernel_size, s))
        c = w
    return nn.Sequential(*layers), c


# Frames the small stem's first convolution sees by default in the causal models (rcn_*, cnn_lstm_*): a causal 5-frame
# kernel at full resolution (CausalStem), chosen by the ablations (3 frames, then 5: docs/reports/how_defaults_were_chosen.md).
# A pretrained 2-D stem (resnet18) keeps seeing one frame; ``stem_frames=1`` gives the per-frame stem of before.
STEM_FRAMES = 5
# How the causal models' small stem coarsens the grid after its first layer (see small_stem): its later layers are
# evaluated at every position, then max pooled, chosen by the ablation (docs/reports/how_defaults_were_chosen.md).
STEM_DOWNSAMPLE = "pool"
# How the causal stem's first layer coarsens the grid: "pool", its causal convolution at every position of the full
# grid, then a max pool (the default, as above), or "stride", the same kernel evaluated at every other position (a
# quarter of the layer's work; it still compares frames at full resolution, before the grid is coarsened).
STEM_FIRST_DOWNSAMPLE = "pool"


class CausalStem(nn.Module):
    """The small stem with time in its first layer: a causal ``(frames, 3, 3)`` convolution at full resolution (frame
    t and its ``frames - 1`` predecessors), BatchNorm, ReLU and a ``pool`` x ``pool`` max pool in place of the first
    layer's stride, then the ``rest`` of the stem on every frame alone; ``first_downsample="stride"`` evaluates the
    causal convolution at every ``pool``-th position instead (no max pool).

    Why (docs/reports/how_defaults_were_chosen.md, "Zoom"): motion finer than the stem's output grid (rings a few pixels apart moving a
    fraction of a pixel) survived only where frames were compared before the grid was coarsened; the max pool after
    the comparison is a complex cell after a space-time filter (whether it matters, or only the full-resolution
    kernel, was not settled).
    Before the first frame the clip is taken to stand still (the first frame repeated), so the first step sees no
    motion (zeros there, as ``input_frames`` in the cells pads, would make the first frame a jump from black; in
    the zoom probe of docs/reports/how_defaults_were_chosen.md the two paddings made no clear difference over 2 seeds).
    ``forward(x, past=None) -> (y, past)``: ``x`` ``(B, C, T, H, W)``; ``past`` carries the input's last
    ``frames - 1`` frames to the next chunk, so chunk after chunk equals one pass (in eval mode; in train mode the
    BatchNorms share batch statistics across frames, as everywhere in the stem).
    """

    def __init__(self, in_channels: int, width: int, rest: nn.Module, *, frames: int, pool: int,
                 first_downsample: str = "pool"):
        super().__init__()
        if not isinstance(frames, int) or frames < 2:
            raise ValueError(f"a causal stem needs stem_frames >= 2, got {frames!r}")
        if first_downsample not in STEM_DOWNSAMPLES:
            raise ValueError(f"stem_first_downsample must be one of {STEM_DOWNSAMPLES}, got {first_downsample!r}")
        self.frames = frames
        stride = pool if first_downsample == "stride" else 1
        self.conv = nn.Conv3d(in_channels, width, (frames, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1),
                              bias=False)
        self.bn = nn.BatchNorm3d(width)
        self.pool = nn.MaxPool3d((1, pool, pool)) if pool > 1 and stride == 1 else nn.Identity()
        self.rest = PerFrame(rest)

    def fold_batch_norm(self) -> bool:
        """Fold ``bn`` into ``conv`` for inference (:func:`vidrcnn.layers.fold.fold_batch_norms`)."""
        if not can_fold(self.conv, self.bn):
            return False
        self.conv, self.bn = fuse_conv_bn_eval(self.conv, self.bn), nn.Identity()
        return True

    def forward(self, x: Tensor, past: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if past is None:  # a clip that stood still before it began
            past = x[:, :, :1].expand(-1, -1, self.frames - 1, -1, -1)
        xp = torch.cat([past, x], dim=2)  # (B, C, frames - 1 + T, H, W)
        y = self.pool(torch.relu(self.bn(self.conv(xp))))
        return self.rest(y), xp[:, :, xp.shape[2] - (self.frames - 1):]


def causal_small_stem(widths: Sequence[int], strides: Sequence[int], *, frames: int, downsample: str = "stride",
                      first_downsample: str = STEM_FIRST_DOWNSAMPLE) -> tuple[CausalStem, int]:
    """:class:`CausalStem` with the small stem's ``widths`` and ``strides``: the first stride becomes the max pool
    after the full-resolution causal convolution (or its stride, ``first_downsample="stride"``), the others as
    ``downsample`` says (:func:`small_stem`); returns ``(module, out_channels)``."""
    rest, c = small_stem(widths[1:], strides[1:], in_channels=widths[0], downsample=downsample)
    return CausalStem(3, widths[0], rest, frames=frames, pool=strides[0], first_downsample=first_downsample), c


def conv_stages(in_channels: int, widths: Sequence[int], *, convs_per_stage: int = 1,
                pool_between: bool = True) -> tuple[nn.Sequential, int]:
    """Plain 2-D stages of conv-BN-ReLU with a 2x2 max pool between stages; returns ``(module, out_channels)``."""
    layers: list[nn.Module] = []
    c = in_channels
    for i, w in enumerate(widths):
        if i > 0 and pool_between:
            layers.append(nn.MaxPool2d(2))
        for _ in range(convs_per_stage):
            layers.append(conv_bn_relu(c, w))
            c = w
    return nn.Sequential(*layers), c


RESNET18_STAGE_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512}


def resnet18_stem(stage: int = 2, weights: str | os.PathLike | None = None) -> tuple[nn.Sequential, int]:
    """torchvision's ResNet-18 truncated after ``stage`` (1..4; stride 4, 8, 16, 32); returns ``(module, channels)``.

    ``weights``: ``None`` (random init, nothing downloaded), ``"imagenet"`` (torchvision's weights API,
    ``ResNet18_Weights.IMAGENET1K_V1``: uses the local torch hub cache, downloads only then and only when online), or
    the path of a local file holding a ResNet-18 ``state_dict`` (its ``fc.*`` keys are ignored).
    """
    from torchvision.models import ResNet18_Weights, resnet18

    if stage not in RESNET18_STAGE_CHANNELS:
        raise ValueError(f"ResNet-18 stage must be 1..4, got {stage}")
    if weights == "imagenet":
        try:
            net = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)
        except Exception as e:  # no network, no cache: say which weights and why
            raise CheckpointError(None, f"cannot load ImageNet ResNet-18 weights: {e}") from e
    else:
        net = resnet18(weights=None)
        if weights is not None:
            path = Path(weights)
            try:
                sd = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:
                raise CheckpointError(path, f"cannot read ResNet-18 weights: {e}") from e
            sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
            sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
            missing, unexpected = net.load_state_dict(sd, strict=False)
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing or unexpected:
                raise CheckpointError(path, f"not a ResNet-18 state_dict (missing {missing[:3]}, "
                                            f"unexpected {unexpected[:3]})")
    parts = [net.conv1, net.bn1, net.relu, net.maxpool] + [getattr(net, f"layer{i}") for i in range(1, stage + 1)]
    return nn.Sequential(*parts), RESNET18_STAGE_CHANNELS[stage]


def build_stem(kind: str, *, widths: Sequence[int], strides: Sequence[int], resnet_stage: int = 2,
               weights: str | os.PathLike | None = None, stem_strides: Sequence[int] | None = None,
               frames: int | None = 1, downsample: str | None = "stride",
               first_downsample: str | None = None) -> tuple[nn.Module, int]:
    """``kind="small"``: :func:`small_stem` with ``widths`` and ``strides`` (or ``stem_strides``, the user's choice,
    checked), or with ``frames > 1`` :func:`causal_small_stem` (a :class:`CausalStem`, which maps whole clips, not
    frames); ``"resnet18"``: :func:`resnet18_stem`; ``"none"``: identity on RGB (3 channels).
    ``frames=None``: the causal models' default, :data:`STEM_FRAMES` for the small stem and 1 for the others.
    ``downsample``: how the small stem's strided layers coarsen the grid (:func:`small_stem`); ``None``: the
    causal models' default, :data:`STEM_DOWNSAMPLE`. ``first_downsample``: the same for the causal stem's first
    layer (``frames > 1`` only); ``None``: :data:`STEM_FIRST_DOWNSAMPLE`."""
    if downsample is None:
        downsample = STEM_DOWNSAMPLE if kind == "small" else "stride"
    if downsample not in STEM_DOWNSAMPLES:
        raise ValueError(f"stem_downsample must be one of {STEM_DOWNSAMPLES}, got {downsample!r}")
    if downsample != "stride" and kind != "small":
        raise ValueError(f"stem_downsample applies to the small stem only, not stem={kind!r}")
    if frames is None:
        frames = STEM_FRAMES if kind == "small" else 1
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
        raise ValueError(f"stem_frames must be an integer >= 1, got {frames!r}")
    if frames > 1 and kind != "small":
        raise ValueError(f"stem_frames applies to the small stem only, not stem={kind!r}")
    if first_downsample is not None and (kind != "small" or frames == 1):
        raise ValueError("stem_first_downsample applies to the small stem with time in its first layer "
                         f"(stem_frames > 1) only, not stem={kind!r}, stem_frames={frames}")
    if first_downsample is None:  # its value is checked by CausalStem, the one place it is used
        first_downsample = STEM_FIRST_DOWNSAMPLE
    if stem_strides is not None:
        if kind != "small":
            raise ValueError(f"stem_strides applies to the small stem only, not stem={kind!r}")
        stem_strides = tuple(stem_strides)
        if len(stem_strides) != len(widths) or not all(isinstance(s, int) and s >= 1 for s in stem_strides):
            raise ValueError(f"stem_strides must be {len(widths)} integers >= 1 (one per stem layer), "
                             f"got {list(stem_strides)}")
        strides = stem_strides
    if kind == "small":
        if weights is not None:
            raise ValueError("the small stem has no pretrained weights; use stem='resnet18'")
        if frames > 1:
            return causal_small_stem(widths, strides, frames=frames, downsample=downsample,
                                     first_downsample=first_downsample)
        return small_stem(widths, strides, downsample=downsample)
    if kind == "resnet18":
        return resnet18_stem(resnet_stage, weights)
    if kind == "none":
        return nn.Identity(), 3
    raise ValueError(f"stem must be 'small', 'resnet18' or 'none', got {kind!r}")


# The per-frame CNN of the CNN+LSTM and frame-average baselines: the RCN's stem followed by plain conv stages
# (where the RCN has recurrent layers), sized so params and FLOPs stay of the same order as the RCN's.
FRAME_CNN_CONFIGS: dict[str, dict] = {
    "s": {"stem_widths": (16, 32), "stem_strides": (2, 2), "widths": (64, 96), "convs_per_stage": 2},
    "m": {"stem_widths": (32, 64), "stem_strides": (2, 2), "widths": (96, 192, 256), "convs_per_stage": 2},
}


def frame_cnn_parts(size: str, *, stem: str = "small", stem_weights: str | os.PathLike | None = None,
                    resnet_stage: int = 2, stem_strides: Sequence[int] | None = None,
                    frames: int | None = 1, downsample: str | None = "stride",
                    first_downsample: str | None = None) -> tuple[nn.Module, list[nn.Module], int]:
    """The frame CNN in two parts: ``(stem, rest, C)``, ``rest`` the plain conv stages, global average pool and
    flatten that map the stem's output of one frame to a vector ``(N, C)``. Apart because a :class:`CausalStem`
    (``frames`` > 1, see :func:`build_stem`) maps whole clips and has to run before the per-frame ``rest``."""
    cfg = FRAME_CNN_CONFIGS[size]
    stem_module, c = build_stem(stem, widths=cfg["stem_widths"], strides=cfg["stem_strides"],
                                resnet_stage=resnet_stage, weights=stem_weights, stem_strides=stem_strides,
                                frames=frames, downsample=downsample, first_downsample=first_downsample)
    stages, c = conv_stages(c, cfg["widths"], convs_per_stage=cfg["convs_per_stage"])
    return stem_module, [stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(1)], c


def frame_cnn(size: str, *, stem: str = "small", stem_weights: str | os.PathLike | None = None,
              resnet_stage: int = 2, stem_strides: Sequence[int] | None = None) -> tuple[nn.Sequential, int]:
    """A 2-D CNN mapping one frame ``(N, 3, H, W)`` to a feature vector ``(N, C)`` (global average pool);
    returns ``(module, C)``. With ``stem="resnet18"`` the conv stages follow the truncated ResNet-18."""
    stem_module, rest, c = frame_cnn_parts(size, stem=stem, stem_weights=stem_weights, resnet_stage=resnet_stage,
                                           stem_strides=stem_strides)
    return nn.Sequential(stem_module, *rest), c
