"""Recurrent convolutional cells: one mechanism, several update rules.

Every cell keeps a 2-D state per sample and updates it once per time step from two convolutions: ``input_conv`` over
the input at the same step (from the layer below) and a state convolution over its own previous state. The input
convolution never looks at the state, so :class:`~vidrcnn.layers.conv_recurrent.ConvRecurrent` runs it for all time
steps in one batched call and hands the cell its output; the cell's :meth:`RecurrentCell.step` only does the state
part. A cell whose recurrence allows it (e.g. a later parallel-scan cell) may override
:meth:`RecurrentCell.forward_sequence` to process the whole sequence at once instead of looping over ``step``.

Shapes: ``xin_t`` is the input convolution's output at one step, ``(B, num_gates * C, H, W)``; the output ``h_t``
is ``(B, C, H, W)``; the state is a tensor ``(B, C, H, W)`` or, for the LSTM, a tuple ``(h, c)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

State = Tensor | tuple[Tensor, ...]


def _same_conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool) -> nn.Conv2d:
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel sizes must be odd so the state keeps its size, got {kernel_size}")
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class RecurrentCell(nn.Module):
    """Base class: owns ``input_conv`` (input -> ``num_gates * hidden_channels`` maps, with the bias) and the
    state convolution(s) (bias-free, so a zero state contributes exactly nothing)."""

    num_gates: int = 1

    def __init__(self, in_channels: int, hidden_channels: int, *, kernel_size: int = 3,
                 input_kernel_size: int | None = None):
        super().__init__()
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.input_conv = _same_conv(in_channels, self.num_gates * hidden_channels,
                                     input_kernel_size or kernel_size, bias=True)

    def initial_state(self, xin_t: Tensor) -> State:
        """The zero state matching one step of input-conv output ``xin_t``."""
        b, _, h, w = xin_t.shape
        return xin_t.new_zeros(b, self.hidden_channels, h, w)

    def step(self, xin_t: Tensor, state: State | None) -> tuple[Tensor, State]:
        """One time step: ``xin_t`` is ``input_conv(x_t)``; returns ``(h_t, new_state)``."""
        raise NotImplementedError

    def forward_sequence(self, xin: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Run the recurrence over ``xin`` of shape ``(B, T, num_gates*C, H, W)`` -> ``((B, T, C, H, W), state)``."""
        outs = []
        # unbind, not xin[:, t]: the backward of each indexing writes its step's gradient into a zero tensor the
        # size of the whole sequence (T full-size fills and adds per pass); unbind's backward is one stack.
        for xin_t in xin.unbind(1):
            h, state = self.step(xin_t, state)
            outs.append(h)
        return torch.stack(outs, dim=1), state

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.hidden_channels}"


class RNNCell(RecurrentCell):
    """Vanilla recurrent CNN: ``h_t = tanh(W_x * x_t + W_h * h_{t-1} + b)`` (``*`` is a 2-D convolution)."""

    def __init__(self, in_channels: int, hidden_channels: int, *, kernel_size: int = 3,
                 input_kernel_size: int | None = None):
        super().__init__(in_channels, hidden_channels, kernel_size=kernel_size, input_kernel_size=input_kernel_size)
        self.state_conv = _same_conv(hidden_channels, hidden_channels, kernel_size, bias=False)

    def step(self, xin_t: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        # A zero state adds nothing: skip its convolution (as RCLCell does).
        h = torch.tanh(xin_t if state is None else xin_t + self.state_conv(state))
        return h, h


class RCLCell(RecurrentCell):
    """Recurrent convolutional layer of Liang & Hu (CVPR 2015):
    ``z_t = w_f * u_t + w_r * x_{t-1} + b``, ``x_t = N(ReLU(z_t))``.

    ``norm="lrn"`` is their local response normalisation across maps, ``x / (1 + alpha/n * sum x^2)^beta`` over
    ``n = C // 8 + 1`` neighbouring maps, alpha 0.001, beta 0.75 (:class:`torch.nn.LocalResponseNorm` divides alpha
    by n exactly as their eq. 4 does). ``norm="bn"`` uses one BatchNorm2d shared over time, ``norm=None`` nothing.
    With a zero initial state the first step is feed-forward only, as in the paper.
    """

    def __init__(self, in_channels: int, hidden_channels: int, *, kernel_size: int = 3,
                 input_kernel_size: int | None = None, norm: str | None = "lrn"):
        super().__init__(in_channels, hidden_channels, kernel_size=kernel_size, input_kernel_size=input_kernel_size)
        self.state_conv = _same_conv(hidden_channels, hidden_channels, kernel_size, bias=False)
        if norm == "lrn":
            self.norm: nn.Module = nn.LocalResponseNorm(hidden_channels // 8 + 1, alpha=0.001, beta=0.75, k=1.0)
        elif norm == "bn":
            self.norm = nn.BatchNorm2d(hidden_channels)
        elif norm is None or norm == "none":
            self.norm = nn.Identity()
        else:
            raise ValueError(f"RCL norm must be 'lrn', 'bn' or None, got {norm!r}")

    def step(self, xin_t: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        # A zero state adds nothing: skip the convolution so step 0 is exactly the feed-forward layer.
        z = xin_t if state is None else xin_t + self.state_conv(state)
        x = self.norm(F.relu(z))
        return x, x


class GRUCell(RecurrentCell):
    """ConvGRU as in Ballas et al. 2016 (GRU-RCN)::

        z_t = sigmoid(W_z * x_t + U_z * h_{t-1})
        r_t = sigmoid(W_r * x_t + U_r * h_{t-1})
        n_t = tanh(W * x_t + U * (r_t . h_{t-1}))
        h_t = (1 - z_t) . h_{t-1} + z_t . n_t

    ``input_conv`` holds ``[W_z; W_r; W]`` (and the biases), ``state_conv_zr`` holds ``[U_z; U_r]``, ``state_conv_n``
    holds ``U``.
    """

    num_gates = 3

    def __init__(self, in_channels: int, hidden_channels: int, *, kernel_size: int = 3,
                 input_kernel_size: int | None = None):
        super().__init__(in_channels, hidden_channels, kernel_size=kernel_size, input_kernel_size=input_kernel_size)
        self.state_conv_zr = _same_conv(hidden_channels, 2 * hidden_channels, kernel_size, bias=False)
        self.state_conv_n = _same_conv(hidden_channels, hidden_channels, kernel_size, bias=False)

    def step(self, xin_t: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        x_z, x_r, x_n = xin_t.chunk(3, dim=1)
        if state is None:  # zero state: both state convolutions give zeros, skip them
            h = torch.sigmoid(x_z) * torch.tanh(x_n)
            return h, h
        h_z, h_r = self.state_conv_zr(state).chunk(2, dim=1)
        z = torch.sigmoid(x_z + h_z)
        r = torch.sigmoid(x_r + h_r)
        n = torch.tanh(x_n + self.state_conv_n(r * state))
        h = torch.lerp(state, n, z)  # (1 - z) h + z n, one op
        return h, h


class LSTMCell(RecurrentCell):
    """ConvLSTM as in Shi et al. 2015::

        i_t = sigmoid(W_xi * x_t + W_hi * h_{t-1} + w_ci . c_{t-1} + b_i)
        f_t = sigmoid(W_xf * x_t + W_hf * h_{t-1} + w_cf . c_{t-1} + b_f)
        c_t = f_t . c_{t-1} + i_t . tanh(W_xc * x_t + W_hc * h_{t-1} + b_c)
        o_t = sigmoid(W_xo * x_t + W_ho * h_{t-1} + w_co . c_t + b_o)
        h_t = o_t . tanh(c_t)

    Gate order in ``input_conv``/``state_conv`` is ``i, f, c, o``. Peepholes (the ``w_c* .`` Hadamard terms) are off
    by default; ``peephole=True`` gives one weight per map (``(C, 1, 1)``, any frame size), and
    ``peephole_size=(H, W)`` full ``(C, H, W)`` weights as in Shi et al. (then the state must be that size).
    The forget-gate bias starts at 1 so early training keeps the cell state.
    """

    num_gates = 4

    def __init__(self, in_channels: int, hidden_channels: int, *, kernel_size: int = 3,
                 input_kernel_size: int | None = None, peephole: bool = False,
                 peephole_size: tuple[int, int] | None = None):
        super().__init__(in_channels, hidden_channels, kernel_size=kernel_size, input_kernel_size=input_kernel_size)
        self.state_conv = _same_conv(hidden_channels, 4 * hidden_channels, kernel_size, bias=False)
        with torch.no_grad():
            self.input_conv.bias[hidden_channels:2 * hidden_channels].fill_(1.0)
        self.peephole = peephole or peephole_size is not None
        if self.peephole:
            shape = (3, hidden_channels, *(peephole_size or (1, 1)))
            self.peephole_weight = nn.Parameter(torch.zeros(shape))  # rows: w_ci, w_cf, w_co
        else:
            self.register_parameter("peephole_weight", None)

    def initial_state(self, xin_t: Tensor) -> tuple[Tensor, Tensor]:
        b, _, h, w = xin_t.shape
        zeros = xin_t.new_zeros(b, self.hidden_channels, h, w)
        return zeros, zeros

    def step(self, xin_t: Tensor, state: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if state is None:  # zero state: no state convolution, and c_prev = 0 drops the forget and peephole terms
            gates, c_prev = xin_t, None
        else:
            h_prev, c_prev = state
            gates = xin_t + self.state_conv(h_prev)
        gi, gf, gc, go = gates.chunk(4, dim=1)
        if self.peephole_weight is not None:
            w_ci, w_cf, w_co = self.peephole_weight
            if c_prev is not None:
                gi = gi + w_ci * c_prev
                gf = gf + w_cf * c_prev
        c = torch.sigmoid(gi) * torch.tanh(gc)
        if c_prev is not None:
            c = torch.sigmoid(gf) * c_prev + c
        if self.peephole_weight is not None:
            go = go + w_co * c
        h = torch.sigmoid(go) * torch.tanh(c)
        return h, (h, c)


CELLS: dict[str, type[RecurrentCell]] = {"rnn": RNNCell, "rcl": RCLCell, "gru": GRUCell, "lstm": LSTMCell}


def get_cell(cell: str | type[RecurrentCell]) -> type[RecurrentCell]:
    """A cell class from its name in :data:`CELLS`, or the class itself."""
    if isinstance(cell, type) and issubclass(cell, RecurrentCell):
        return cell
    try:
        return CELLS[cell]
    except (KeyError, TypeError):
        raise ValueError(f"unknown cell {cell!r}; known: {', '.join(CELLS)}") from None
