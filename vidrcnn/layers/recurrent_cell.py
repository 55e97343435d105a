"""The recurrent cell's mechanism (:class:`RecurrentCell`) and the options every cell shares (:class:`CellOptions`);
the update rules are in :mod:`vidrcnn.layers.cells`.

Every cell keeps a 2-D state per sample and updates it once per time step from two convolutions: ``input_conv`` over
the input at the same step (from the layer below) and a state convolution over its own previous state. The input
convolution never looks at the state, so :class:`~vidrcnn.layers.conv_recurrent.ConvRecurrent` runs it for all time
steps in one batched call and hands the cell its output; the cell's :meth:`RecurrentCell.step` only does the state
part. A cell whose recurrence allows it (e.g. a later parallel-scan cell) may override
:meth:`RecurrentCell.forward_sequence` to process the whole sequence at once instead of looping over ``step``.

Shapes: ``xin_t`` is the input convolution's output at one step, ``(B, num_gates * C, H, W)``; the output ``h_t``
is ``(B, C, H, W)``; the state is a tensor ``(B, C, H, W)`` or, for the LSTM, a tuple ``(h, c)``.

Training options every cell shares, all off by default (the cells as they were; the ``rcn_*`` builders turn on
``preact_norm="batch"``, the choice of docs/reports/rcn_design_choices.md):

- ``preact_norm``: a norm on the input pre-activations, each gate normalised on its own. ``"batch"``: BatchNorm per
  map, statistics over all frames of the batch in training (as the stem's BatchNorm), running statistics in eval,
  where the cell is causal and streams exactly. ``"group"`` / ``"layer"``: GroupNorm over one frame's maps of one
  sample (up to 8 groups per gate / one), causal and streaming-exact in training too. Without a norm the
  pre-activations shrink layer after layer (the default init has gain 1/sqrt(3)), the gates sit at 0.5, and the
  cell is close to linear: docs/reports/why_rcns_learned_slowly.md.
- ``state_norm``: the same for the state pre-activations, scale only (``"group"``, ``"layer"`` or None; ``"auto"``:
  the input's kind for group/layer, none with ``"batch"``). The LSTM's cell state is never normalised (PredRNN,
  Cooijmans et al. 2016).
- ``norm_scale``: the scale the norms above start with (default 1, PyTorch's); Cooijmans et al. 2016 start theirs
  at 0.1, so the gates start near their biases. Initialisation only: the model's equations do not change. (With
  the rcn builders' residual layers and ReLU it breaks training: docs/reports/how_defaults_were_chosen.md, "the state kernel as the identity".)
- ``state_init`` (cells with a state kernel): ``"identity"`` starts the state kernel as a Dirac kernel (the IRNN
  of Le et al. 2015): the vanilla cell's and the RCL's state kernel, the GRU's and the LSTM's candidate term.
  Initialisation only; the rcn builders use it for the vanilla cell and the RCL.
- ``chrono=T_max`` (gated cells): chrono initialisation of the gate biases (Tallec & Ollivier 2018), so the state
  starts out remembering over 1..T_max steps instead of halving every step.
- ``input_frames=k``: the input term also sees the input's previous k - 1 frames (a causal 3-D kernel, E3D-LSTM's
  idea); the layer state then carries those frames (:class:`~vidrcnn.layers.conv_recurrent.ConvRecurrent`).
- ``activation`` (vanilla, GRU, LSTM): the nonlinearity where the equations have ``tanh``, ``"tanh"`` or ``"relu"``
  (the Li-GRU of Ravanelli et al. 2018: a ReLU candidate after a batch-normalised input; the IRNN's ReLU for the
  vanilla cell, Le et al. 2015). A bounded odd activation is close to linear around zero, where the per-frame
  normalisation puts its input; the ZoomIn/ZoomOut pair, which needs its motion features rectified before they
  are pooled over space, was then not learned in the study's budget (docs/reports/how_defaults_were_chosen.md, "a rectifying activation").
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from vidrcnn.layers.fold import can_fold, norm_scale

State = Tensor | tuple[Tensor, ...]
PREACT_NORMS = (None, "group", "layer", "batch")
ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


def get_activation(name: str):
    """The function of an ``activation`` option (:data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def make_preact_norm(kind: str | None, num_gates: int, channels: int) -> nn.Module:
    """The normalisation of ``num_gates`` stacked pre-activations of ``channels`` maps each (``(N, G*C, H, W)``).

    GroupNorm's groups are contiguous channel blocks and the gates are stacked contiguously, so with a multiple of
    ``num_gates`` groups no group mixes two gates. Each sample (one frame of one clip) is normalised on its own.
    ``"batch"``: BatchNorm per map, with statistics over all frames of the batch in training (as the stem's
    BatchNorm) and running statistics in eval, where the cell is then causal and streams exactly.
    """
    if kind is None or kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(num_gates * channels)
    if kind == "layer":
        per_gate = 1
    elif kind == "group":
        per_gate = max(d for d in range(1, 9) if channels % d == 0)
    else:
        raise ValueError(f"preact_norm must be one of {PREACT_NORMS}, got {kind!r}")
    return nn.GroupNorm(num_gates * per_gate, num_gates * channels)


def stack_steps(outs: list[Tensor]) -> Tensor:
    """The per-step outputs ``(B, C, H, W)`` stacked on a new time axis 1; one step is a view, not a copy (a streamed
    frame then launches one kernel fewer per layer)."""
    return outs[0].unsqueeze(1) if len(outs) == 1 else torch.stack(outs, dim=1)


def chrono_bias(channels: int, t_max: int, generator: torch.Generator | None = None) -> Tensor:
    """Chrono initialisation (Tallec & Ollivier 2018): ``log u``, ``u ~ U[1, t_max - 1]``, one value per map: a
    forget gate ``sigmoid(log u) = u / (1 + u)`` keeps the state for about ``u + 1`` steps at the start."""
    if t_max < 3:
        raise ValueError(f"chrono T_max must be >= 3 (time scales 1..T_max-1), got {t_max}")
    return torch.log(torch.empty(channels).uniform_(1.0, t_max - 1.0, generator=generator))


def same_conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool) -> nn.Conv2d:
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel sizes must be odd so the state keeps its size, got {kernel_size}")
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


@dataclass(frozen=True)
class CellOptions:
    """The construction options the cells share, in one object (timm's style) instead of the same keywords repeated in
    every constructor; the module docstring says what each does. A cell takes them as ``options`` or as keywords
    (``GRUCell(8, 16, preact_norm="batch")``), and refuses with a TypeError an option it has no use for
    (:attr:`RecurrentCell.option_names`): the RCL has its ReLU by definition, the vanilla cell no gate to chrono-start.
    """

    kernel_size: int = 3  # the state convolution's, and the input convolution's unless input_kernel_size
    input_kernel_size: int | None = None
    preact_norm: str | None = None
    state_norm: str | None = "auto"
    norm_scale: float | None = None
    input_frames: int = 1
    activation: str = "tanh"
    state_init: str = "default"
    chrono: int | None = None

    @classmethod
    def take(cls, options: CellOptions | None, kwargs: dict, cell: type) -> CellOptions:
        """``options`` (or the defaults) with the option keywords in ``kwargs`` put in; any other keyword, or an
        option ``cell`` has no use for set away from its default, is a TypeError."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(f"{cell.__name__} got unexpected keyword argument(s) {', '.join(map(repr, unknown))}")
        options = replace(options or cls(), **kwargs)
        unused = [n for n in sorted(names - set(cell.option_names)) if getattr(options, n) != getattr(cls(), n)]
        if unused:
            raise TypeError(f"{cell.__name__} takes no {', '.join(map(repr, unused))} option")
        return options


class RecurrentCell(nn.Module):
    """Base class: owns ``input_conv`` (input -> ``num_gates * hidden_channels`` maps, with the bias) and the
    state convolution(s) (bias-free, so a zero state contributes exactly nothing). ``options``: a
    :class:`CellOptions`, or its fields as keywords."""

    num_gates: int = 1
    # the CellOptions fields this cell uses (every cell the first six)
    option_names: tuple[str, ...] = ("kernel_size", "input_kernel_size", "preact_norm", "state_norm", "norm_scale",
                                     "input_frames")

    def __init__(self, in_channels: int, hidden_channels: int, options: CellOptions | None = None, **kwargs):
        super().__init__()
        self.options = o = CellOptions.take(options, kwargs, type(self))
        kernel_size, input_kernel_size, preact_norm = o.kernel_size, o.input_kernel_size, o.preact_norm
        input_frames, state_norm, norm_scale = o.input_frames, o.state_norm, o.norm_scale
        if not isinstance(input_frames, int) or input_frames < 1:
            raise ValueError(f"input_frames must be an integer >= 1, got {input_frames!r}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        if preact_norm not in (*PREACT_NORMS, "none"):
            raise ValueError(f"preact_norm must be one of {PREACT_NORMS}, got {preact_norm!r}")
        self.preact_norm = None if preact_norm == "none" else preact_norm
        # The state terms' norm: by default the input's kind, none where the input's is BatchNorm (batch statistics
        # of a state would differ from step to step, it grows from zero; and a per-frame norm of the state makes a
        # small early state count as much as a large one: docs/reports/why_rcns_learned_slowly.md, "Memory").
        if state_norm == "auto":
            state_norm = None if self.preact_norm == "batch" else self.preact_norm
        if state_norm not in (None, "none", "group", "layer"):
            raise ValueError(f"state_norm must be 'auto', 'group', 'layer' or None, got {state_norm!r}")
        self.state_norm_kind = None if state_norm == "none" else state_norm
        self.input_frames = input_frames
        k = input_kernel_size or kernel_size
        self.input_conv = same_conv(in_channels, self.num_gates * hidden_channels, k, bias=True)
        # input_frames > 1: the input term also convolves the input's k - 1 previous frames (a causal 3-D kernel,
        # as E3D-LSTM's), so a layer sees motion in its input directly, not only through its own state.
        self.input_conv_past = (nn.Conv3d(in_channels, self.num_gates * hidden_channels, (input_frames - 1, k, k),
                                          padding=(0, k // 2, k // 2), bias=False) if input_frames > 1 else None)
        self.input_norm = make_preact_norm(preact_norm, self.num_gates, hidden_channels)
        # norm_scale: the norms' scale at initialisation (Cooijmans et al. 2016 start theirs at 0.1, not 1, so that
        # the gates start near their biases instead of spread over the sigmoid).
        if norm_scale is not None and isinstance(self.input_norm, nn.Identity):
            raise ValueError(f"norm_scale={norm_scale!r} needs a preact_norm: there is no norm to scale")
        self.norm_scale = norm_scale
        self._init_norm_scale(self.input_norm)

    def fold_batch_norm(self) -> bool:
        """Fold the input norm, when it is a BatchNorm in eval mode, into the input convolution (its scale also into
        ``input_conv_past``: the norm acts on their sum); for inference (:func:`vidrcnn.layers.fold.fold_batch_norms`).
        """
        if not can_fold(self.input_conv, self.input_norm):
            return False
        if self.input_conv_past is not None:
            scale = norm_scale(self.input_norm)
            with torch.no_grad():
                self.input_conv_past.weight.mul_(scale.view(-1, 1, 1, 1, 1))
        self.input_conv, self.input_norm = fuse_conv_bn_eval(self.input_conv, self.input_norm), nn.Identity()
        return True

    def project_input(self, x: Tensor, past: Tensor | None = None) -> Tensor:
        """The input pre-activations ``(N, num_gates*C, H, W)`` of frames ``x`` ``(N, C_in, H, W)``: the input
        convolution, plus ``past`` (``input_conv_past`` of the previous frames, when ``input_frames > 1``), then the
        normalisation (identity unless ``preact_norm``). :class:`ConvRecurrent` calls it on all ``B*T`` frames at
        once; it never mixes frames, so that equals calling it frame by frame."""
        y = self.input_conv(x)
        return self.input_norm(y if past is None else y + past)

    def make_state_norm(self, num_gates: int) -> nn.Module:
        """A normalisation of ``num_gates`` stacked state pre-activations, of the cell's ``state_norm`` kind, with a
        scale and no shift: the zero state then still contributes exactly zero (GroupNorm maps zeros to zeros), so
        skipping the state convolution on the first step stays exact; the input norm's shift is the bias."""
        norm = make_preact_norm(self.state_norm_kind, num_gates, self.hidden_channels)
        if isinstance(norm, nn.GroupNorm):
            norm.register_parameter("bias", None)
        self._init_norm_scale(norm)
        return norm

    def _init_norm_scale(self, norm: nn.Module) -> None:
        if self.norm_scale is not None and getattr(norm, "weight", None) is not None:
            nn.init.constant_(norm.weight, self.norm_scale)

    def init_state_kernel(self, conv: nn.Conv2d, state_init: str, block: int = 0) -> None:
        """``state_init="identity"``: start output block ``block`` (``hidden_channels`` maps) of the state
        convolution ``conv`` as the identity, a Dirac kernel that passes each map to itself (IRNN, Le et al. 2015);
        ``"default"``: leave PyTorch's initialisation. Initialisation only."""
        if state_init == "identity":
            c = self.hidden_channels
            with torch.no_grad():
                nn.init.dirac_(conv.weight[block * c:(block + 1) * c])
        elif state_init != "default":
            raise ValueError(f"state_init must be 'default' or 'identity', got {state_init!r}")

    def input_bias(self, gate: int) -> Tensor:
        """The parameter that holds gate ``gate``'s input bias (the norm's shift when the input is normalised: the
        conv bias before a norm is mostly removed by it), as a writable view for initialisation."""
        c = self.hidden_channels
        bias = self.input_conv.bias if isinstance(self.input_norm, nn.Identity) else self.input_norm.bias
        return bias.data[gate * c:(gate + 1) * c]

    def initial_state(self, xin_t: Tensor) -> State:
        """The zero state matching one step of input-conv output ``xin_t``."""
        b, _, h, w = xin_t.shape
        return xin_t.new_zeros(b, self.hidden_channels, h, w)

    def step(self, xin_t: Tensor, state: State | None) -> tuple[Tensor, State]:
        """One time step: ``xin_t`` is ``project_input(x_t)``; returns ``(h_t, new_state)``."""
        raise NotImplementedError

    def compile_step(self, **options) -> None:
        """From now on run :meth:`step` compiled (``torch.compile(self.step, dynamic=False, **options)``): a step's
        gate arithmetic and state norm fused into a few kernels (on a GPU a ConvGRU step is otherwise about 15 small
        kernels per layer, and launching them costs more than running them). Only the step is compiled, never the
        unrolled time loop, so the compile time does not grow with T: one compile per layer and input shape, on
        the first call. The first step from a zero state (no state convolution) stays eager. The equations, the
        parameters and the state dict are unchanged; a copy of the cell (``copy.deepcopy``, pickling) runs eagerly
        until it is compiled again. Use :func:`compile_steps` for a whole model.

        Refused where the step itself holds a BatchNorm (the RCL with ``norm="bn"``): the compiled backward would
        read running statistics that the next steps have updated in place."""
        if self.step_has_batch_norm():
            raise ValueError(f"{type(self).__name__}'s step holds a BatchNorm (its running statistics change in "
                             "place at every step): it runs eagerly")
        self._compiled_step = torch.compile(self.step, **{"dynamic": False, **options})

    def step_has_batch_norm(self) -> bool:
        """Whether :meth:`step` runs a BatchNorm (the state norms never are: see ``make_state_norm``'s callers)."""
        return False

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_compiled_step", None)  # bound to this cell: a copy must not run the original's weights
        return state

    def forward_sequence(self, xin: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Run the recurrence over ``xin`` of shape ``(B, T, num_gates*C, H, W)`` -> ``((B, T, C, H, W), state)``."""
        outs = []
        step = self.__dict__.get("_compiled_step") or self.step  # the step after the first (:meth:`compile_step`)
        # unbind, not xin[:, t]: the backward of each indexing writes its step's gradient into a zero tensor the
        # size of the whole sequence (T full-size fills and adds per pass); unbind's backward is one stack.
        for xin_t in xin.unbind(1):
            h, state = (self.step if state is None else step)(xin_t, state)
            outs.append(h)
        return stack_steps(outs), state

    def extra_repr(self) -> str:
        extra = f", preact_norm={self.preact_norm!r}" if self.preact_norm else ""
        if getattr(self, "activation", "tanh") != "tanh":
            extra += f", activation={self.activation!r}"
        return f"{self.in_channels}, {self.hidden_channels}{extra}"
