"""The ablation's named variants: each a registered model with builder options on top of the reference (the options
as they were before the ablation) and, rarely, other config overrides. Every option set is named by what it is.

Not public API (:mod:`vidrcnn.experiments`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Every option of the rcn builders, as it was before the ablation (the reference of each model).
OFF: dict[str, Any] = {"preact_norm": None, "state_norm": "auto", "residual": False, "head": "last",
                       "input_frames": 1, "stem_frames": 1, "stem_downsample": "stride"}
# ... and of the cells that have an ``activation`` option (the others have no tanh to replace).
ACTIVATION_OFF: dict[str, Any] = {"activation": "tanh"}
ACTIVATION_CELLS = ("rnn", "gru", "lstm")
# ... and the builders' initialisations (vidrcnn/models/rcn.py: INIT_DEFAULTS) switched off, per cell.
INIT_OFF: dict[str, dict[str, Any]] = {"mingru": {"chrono": None}, "rnn": {"state_init": "default"},
                                       "rcl": {"state_init": "default"}, "gru": {"state_init": "default"},
                                       "lstm": {"state_init": "default", "coupled": False}}  # and its four gates

# The CNN+LSTM baseline as it was before it took the RCNs' stem.
CNN_LSTM_OFF: dict[str, Any] = {"stem_frames": 1, "stem_downsample": "stride"}


@dataclass(frozen=True)
class Variant:
    """``label``: row name and folder; ``kwargs``: builder options on top of :data:`OFF` for rcn models."""

    label: str
    model: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()
    sizes: tuple[int, ...] = (32,)  # the frame sizes it runs at
    seeds: tuple[int, ...] | None = None  # None: the ablation's seeds; a learning-rate probe runs fewer
    builder_defaults: bool = False  # True: the builder's own defaults under ``kwargs`` (no :data:`OFF` reference)

    def options(self) -> dict[str, Any]:
        if self.builder_defaults:
            return dict(self.kwargs)
        base = dict(OFF) if self.model.startswith("rcn_") else CNN_LSTM_OFF if self.model.startswith("cnn_lstm_") else {}
        if self.model.startswith("rcn_") and self.model.split("_")[1] in ACTIVATION_CELLS:
            base.update(ACTIVATION_OFF)
        if self.model.startswith("rcn_"):
            base.update(INIT_OFF.get(self.model.split("_")[1], {}))
        return {**base, **self.kwargs}

    def all_overrides(self) -> list[str]:
        # One key at a time: merged into the config file's own model.kwargs, never replacing them.
        return [f"model.kwargs.{k}={json.dumps(v)}" for k, v in self.options().items()] + list(self.overrides)

    def size_overrides(self, size: int) -> list[str]:
        return [f"data.size={size}", f"data.resize={size}", *self.all_overrides()]

    def describe(self) -> str:
        text = ", ".join(f"{k}={v}" for k, v in self.kwargs.items()) or (
            "builder defaults" if self.builder_defaults else "reference")
        return text + ("; " + " ".join(self.overrides) if self.overrides else "")


def _v(model: str, *, overrides: Sequence[str] = (), sizes: Sequence[int] = (32,), seeds: Sequence[int] | None = None,
       **kwargs) -> Variant:
    name = "+".join([model.removeprefix("rcn_").removesuffix("_s"), *(f"{k}={v}" for k, v in kwargs.items()),
                     *(o.rpartition(".")[2] for o in overrides)])
    return Variant(name, model, kwargs, tuple(overrides), tuple(sizes), None if seeds is None else tuple(seeds))


# Input BatchNorm in each cell, no state norm, residual layers: the first of the rcn builders' defaults that the
# ablation chose (vidrcnn/models/rcn.py), spelled out.
NORMED_RESIDUAL: dict[str, Any] = {"preact_norm": "batch", "state_norm": None, "residual": True}

# ... then a stem whose first layer sees 5 frames at full resolution and pools, and the ReLU where a cell has a tanh
# to replace (vidrcnn/models/rcn.py: RELU_CELLS, STEM_FRAMES, STEM_DOWNSAMPLE).
POOLED_STEM_RELU: dict[str, dict[str, Any]] = {
    "gru": {"stem_frames": 5, "activation": "relu", "stem_downsample": "pool"},
    "lstm": {"stem_frames": 5, "activation": "relu", "stem_downsample": "pool"},
    "mingru": {"stem_frames": 5, "stem_downsample": "pool"},  # no tanh to replace
    "rnn": {"stem_frames": 5, "activation": "relu", "stem_downsample": "pool"},
    "rcl": {"stem_frames": 5, "stem_downsample": "pool"},  # ReLU and LRN already (Liang & Hu)
}

# ... then the minGRU's chrono gate biases and the identity state kernel of the vanilla cell and the RCL
# (vidrcnn/models/rcn.py: INIT_DEFAULTS), initialisations only.
CHRONO_IDENTITY_INIT: dict[str, dict[str, Any]] = {"mingru": {"chrono": 16}, "rnn": {"state_init": "identity"},
                                            "rcl": {"state_init": "identity"}}

# The cheaper stem that 3 seeds could not tell from the default on the ConvGRU (docs/reports/each_default_left_out.md: 3 frames,
# strided: 90.2 ± 1.5 against 91.5 ± 2.4), which costs less per step (docs/reports/how_defaults_were_chosen.md, the cost breakdown).
STRIDED_STEM: dict[str, Any] = {"stem_frames": 3, "stem_downsample": "stride"}
# ... and with its causal first layer strided too (a quarter of that layer's work, no max pool): the candidate for
# the cost target of issue 11 (a training step within 1.3x of the NORMED_RESIDUAL models').
ALL_STRIDED_STEM: dict[str, Any] = {**STRIDED_STEM, "stem_first_downsample": "stride"}

# The choices, each alone on the ConvGRU, then combined with the normalisation that helps most. Frame size 32 is the
# study's recipe; --sizes 64 checks that the ranking holds (each run there costs about four times as much).
VARIANTS: tuple[Variant, ...] = (
    _v("rcn_gru_s", sizes=(32, 64)),
    _v("rcn_gru_s", preact_norm="group"),
    _v("rcn_gru_s", preact_norm="layer"),
    _v("rcn_gru_s", preact_norm="batch", state_norm="group"),
    _v("rcn_gru_s", preact_norm="batch", state_norm=None),
    _v("rcn_gru_s", chrono=16),
    _v("rcn_gru_s", residual=True),
    _v("rcn_gru_s", head="mean"),
    _v("rcn_gru_s", head="steps"),
    _v("rcn_gru_s", input_frames=2),
    _v("rcn_gru_s", preact_norm="batch", state_norm=None, chrono=16),
    _v("rcn_gru_s", preact_norm="batch", state_norm=None, residual=True, sizes=(32, 64)),  # NORMED_RESIDUAL
    _v("rcn_lstm_s"),
    _v("rcn_lstm_s", preact_norm="batch", state_norm="group"),
    _v("rcn_lstm_s", preact_norm="batch", state_norm=None),
    # Equal terms: the same learning-rate search (one seed) for the baselines and every cell with NORMED_RESIDUAL.
    # The recipe's 3e-3 first, so that the findings compare the other rates with it (the ConvGRU's is above).
    # The best rate found for the 3-D CNN and the ConvGRU (1e-2) runs all seeds: the tuned comparison of the issue.
    # The 3-D CNN at the engine's default rate (1e-3) runs all seeds too: the reference of the rate check below.
    *(_v(m, overrides=(f"train.lr={lr}",), seeds=None if (lr == "1e-2" and m in ("c3d_s", "rcn_gru_s")
                                                          or (lr, m) == ("1e-3", "c3d_s")) else (0,), **kw)
      for m, kw in (("c3d_s", {}), ("cnn_lstm_s", {}), ("frame_avg_s", {}),
                    *((f"rcn_{cell}_s", NORMED_RESIDUAL) for cell in ("gru", "mingru", "lstm", "rcl", "rnn")))
      for lr in ("3e-3", "1e-3", "6e-3", "1e-2") if not (m == "rcn_gru_s" and lr == "3e-3")),
    _v("c3d_s", sizes=(32, 64)),  # the reference of the 64x64 ranking, and of the seconds to 85% at 32x32
    # Time in the stem's first layer, at full resolution (the zoom pair needs it: docs/reports/how_defaults_were_chosen.md).
    *(_v("rcn_gru_s", **NORMED_RESIDUAL, stem_frames=k, sizes=(32, 64) if k == 3 else (32,)) for k in (2, 3)),
    _v("cnn_lstm_s", stem_frames=3),  # equal terms: the same stem for the CNN+LSTM baseline
    # The 3-frame stem at the engine's default rate (users start there), against the 3-D CNN's row at that rate, and
    # with twice the epochs (the zoom pair needs more steps: docs/reports/how_defaults_were_chosen.md).
    *(_v("rcn_gru_s", **NORMED_RESIDUAL, stem_frames=3, overrides=(o,), seeds=(0,))
      for o in ("train.lr=1e-3", "train.epochs=12")),
    # A ReLU in place of tanh, and the stem's second layer at full resolution before a max pool
    # (docs/reports/how_defaults_were_chosen.md, by benchmarks/zoom_probe.py of 7e25895: without a rectifying
    # activation after the stem the zoom pair was not learned).
    *(_v(f"rcn_{cell}_s", **NORMED_RESIDUAL, stem_frames=3, **kw)
      for cell, kw in (("gru", {"activation": "relu", "stem_downsample": "pool"}), ("gru", {"activation": "relu"}),
                       ("gru", {"stem_downsample": "pool"}), ("rnn", {"activation": "relu", "stem_downsample": "pool"}),
                       ("lstm", {"activation": "relu", "stem_downsample": "pool"}),
                       ("mingru", {"stem_downsample": "pool"}), ("rcl", {"stem_downsample": "pool"}))),
    # ... and, one seed each, what might let the zoom pair be learned in the budget: a longer first stem kernel, a
    # loss on every step (a gradient straight to every step's motion features), the tuned rate of 1e-2.
    *(_v("rcn_gru_s", **NORMED_RESIDUAL, **kw, activation="relu", stem_downsample="pool", overrides=o, seeds=(0,))
      for kw, o in (({"stem_frames": 3, "head": "steps"}, ()), ({"stem_frames": 3}, ("train.lr=1e-2",)))),
    # POOLED_STEM_RELU, all seeds: the ConvGRU with each of its three choices left out in turn (and
    # the 3-frame stem without the pool above), and the gated cells at 64x64 against the 3-D CNN and the control there.
    # The full row has the label that the seed-0 screen before it used.
    *(_v("rcn_gru_s", **NORMED_RESIDUAL, stem_frames=k, activation=act, stem_downsample=down,
         sizes=(32, 64) if (k, act, down) == (5, "relu", "pool") else (32,))
      for k, act, down in ((5, "relu", "pool"), (5, "tanh", "pool"), (5, "relu", "stride"))),
    _v("rcn_gru_s", **NORMED_RESIDUAL, activation="relu"),  # the ReLU alone, no time in the stem: the cheapest
    # The two gated cells below 90%: gate biases for memory (chrono, Tallec & Ollivier) on top of their defaults.
    *(_v(f"rcn_{cell}_s", **NORMED_RESIDUAL, **POOLED_STEM_RELU[cell], chrono=16,
         sizes=(32, 64) if cell == "mingru" else (32,)) for cell in ("lstm", "mingru")),
    *(_v(f"rcn_{cell}_s", **NORMED_RESIDUAL, **POOLED_STEM_RELU[cell], sizes=(32, 64) if cell in ("mingru", "lstm") else (32,))
      for cell in ("mingru", "lstm", "rnn", "rcl")),
    # Every cell with POOLED_STEM_RELU at 32x32 (the ConvGRU's and its cheaper stem are in the leave-one-out
    # block above) against the same with the cheaper stem, and the minGRU's chrono candidate on it: can the defaults
    # cost less?
    *(_v(f"rcn_{cell}_s", **NORMED_RESIDUAL, **{**POOLED_STEM_RELU[cell], **STRIDED_STEM})
      for cell in ("lstm", "mingru", "rnn", "rcl")),
    _v("rcn_mingru_s", **NORMED_RESIDUAL, **{**POOLED_STEM_RELU["mingru"], **STRIDED_STEM}, chrono=16),
    *(_v(f"rcn_{cell}_s", **NORMED_RESIDUAL, **{**POOLED_STEM_RELU[cell], **ALL_STRIDED_STEM})
      for cell in ("gru", "mingru", "lstm", "rnn", "rcl")),
    _v("rcn_mingru_s", **NORMED_RESIDUAL, **{**POOLED_STEM_RELU["mingru"], **ALL_STRIDED_STEM}, chrono=16),
    # The norms' scale started at 0.1 (Cooijmans et al. 2016), on the defaults of the three gated cells
    # (the minGRU's with the chrono candidate): does starting the gates near their biases steady the ConvLSTM?
    *(_v(f"rcn_{cell}_s", **NORMED_RESIDUAL, **POOLED_STEM_RELU[cell], **kw, norm_scale=0.1)
      for cell, kw in (("lstm", {}), ("gru", {}), ("mingru", {"chrono": 16}))),
    # ... and the vanilla cell's state kernel started as the identity (IRNN, Le et al. 2015), on its defaults.
    _v("rcn_rnn_s", **NORMED_RESIDUAL, **POOLED_STEM_RELU["rnn"], state_init="identity", sizes=(32, 64)),
    # ... which lifted the vanilla cell by 20 points: the same for the other cells with a state kernel (the RCL's,
    # the GRU's and the LSTM's candidate term).
    *(_v(f"rcn_{cell}_s", **NORMED_RESIDUAL, **POOLED_STEM_RELU[cell], state_init="identity",
         sizes=(32, 64) if cell == "rcl" else (32,)) for cell in ("rcl", "lstm", "gru")),
    # CHRONO_IDENTITY_INIT at the engine's default rate (AdamW 1e-3, where users start; the 3-D CNN's
    # row at that rate is above), and the ConvLSTM's identity candidate kernel with tanh (with the ReLU it diverged).
    *(_v(f"rcn_{cell}_s", **NORMED_RESIDUAL, **POOLED_STEM_RELU[cell], **CHRONO_IDENTITY_INIT.get(cell, {}),
         overrides=("train.lr=1e-3",)) for cell in ("gru", "mingru", "lstm", "rnn", "rcl")),
    _v("rcn_lstm_s", **NORMED_RESIDUAL, **{**POOLED_STEM_RELU["lstm"], "activation": "tanh"}, state_init="identity"),
    # ... and, for the ConvLSTM, the peephole (Shi et al.'s ConvLSTM has one) and a loss on every step (LRCN).
    *(_v("rcn_lstm_s", **NORMED_RESIDUAL, **POOLED_STEM_RELU["lstm"], **kw) for kw in ({"peephole": True}, {"head": "steps"})),
    _v("frame_avg_s", sizes=(64,)),
    # Time to accuracy (issue 27): what might make the gated cells reach 85% sooner, or end higher, against their
    # defaults and the 3-D CNN (the `c3d` row) of the same run. The ConvGRU's identity candidate kernel (+3 points in
    # docs/reports/cheaper_stems_and_state_init.md) on the all-strided stem (half the run's time there); for the ConvLSTM, the coupled
    # input-forget gate (CIFG, Greff et al. 2017: with the ReLU the cell state is a running average, as the ConvGRU's,
    # and cannot grow step after step; three gates at the ConvGRU's widths, so its parameters) and layer-normalised
    # gates (Ba et al. 2016).
    _v("rcn_gru_s", **NORMED_RESIDUAL, **{**POOLED_STEM_RELU["gru"], **ALL_STRIDED_STEM}, state_init="identity"),
    *(_v("rcn_lstm_s", **NORMED_RESIDUAL, **POOLED_STEM_RELU["lstm"], coupled=True, **kw)
      for kw in ({}, {"state_init": "identity"})),  # ... and its candidate kernel as the identity, as the ConvGRU's
    _v("rcn_lstm_s", **{**NORMED_RESIDUAL, "preact_norm": "layer", "state_norm": "auto"}, **POOLED_STEM_RELU["lstm"]),
)
