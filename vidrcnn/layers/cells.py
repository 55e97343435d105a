"""Recurrent convolutional cells, one update rule each on the mechanism of
:class:`~vidrcnn.layers.recurrent_cell.RecurrentCell` (whose module docstring describes the options they share):
the vanilla cell, Liang & Hu's RCL, the ConvGRU and the ConvLSTM (the minGRU is in :mod:`vidrcnn.layers.mingru`);
:data:`CELLS` names them, and :func:`compile_steps` compiles their steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidrcnn.layers.mingru import MinGRUCell
from vidrcnn.layers.recurrent_cell import CellOptions, RecurrentCell, chrono_bias, get_activation, same_conv


class RNNCell(RecurrentCell):
    """Vanilla recurrent CNN: ``h_t = tanh(W_x * x_t + W_h * h_{t-1} + b)`` (``*`` is a 2-D convolution).

    With ``preact_norm``: ``h_t = tanh(N_x(W_x * x_t) + N_h(W_h * h_{t-1}))``; the state norm has a scale and no
    shift (the input norm's shift is the bias), so a zero state still contributes exactly nothing.
    ``activation="relu"`` puts a ReLU where the equation has tanh. ``state_init="identity"`` starts ``W_h`` as the
    identity (a Dirac kernel: each map passes to itself, unchanged), the IRNN of Le et al. 2015, so that with a ReLU
    the state starts out as a running sum of its inputs instead of a random mix that decays; initialisation only.
    """

    option_names = (*RecurrentCell.option_names, "activation", "state_init")

    def __init__(self, in_channels: int, hidden_channels: int, options: CellOptions | None = None, **kwargs):
        super().__init__(in_channels, hidden_channels, options, **kwargs)
        self.activation, self.act = self.options.activation, get_activation(self.options.activation)
        self.state_conv = same_conv(hidden_channels, hidden_channels, self.options.kernel_size, bias=False)
        self.init_state_kernel(self.state_conv, self.options.state_init)
        self.state_conv_norm = self.make_state_norm(1)

    def step(self, xin_t: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        # A zero state adds nothing: skip its convolution (as RCLCell does).
        h = self.act(xin_t if state is None else xin_t + self.state_conv_norm(self.state_conv(state)))
        return h, h


class RCLCell(RecurrentCell):
    """Recurrent convolutional layer of Liang & Hu (CVPR 2015):
    ``z_t = w_f * u_t + w_r * x_{t-1} + b``, ``x_t = N(ReLU(z_t))``.

    ``norm="lrn"`` is their local response normalisation across maps, ``x / (1 + alpha/n * sum x^2)^beta`` over
    ``n = C // 8 + 1`` neighbouring maps, alpha 0.001, beta 0.75 (:class:`torch.nn.LocalResponseNorm` divides alpha
    by n exactly as their eq. 4 does). ``norm="bn"`` uses one BatchNorm2d shared over time, ``norm=None`` nothing.
    With a zero initial state the first step is feed-forward only, as in the paper. ``preact_norm`` (not in the
    paper) normalises the two terms of ``z_t`` separately before the ReLU, as for the other cells.
    """

    option_names = (*RecurrentCell.option_names, "state_init")

    def __init__(self, in_channels: int, hidden_channels: int, options: CellOptions | None = None, *,
                 norm: str | None = "lrn", **kwargs):
        super().__init__(in_channels, hidden_channels, options, **kwargs)
        self.state_conv = same_conv(hidden_channels, hidden_channels, self.options.kernel_size, bias=False)
        self.init_state_kernel(self.state_conv, self.options.state_init)
        self.state_conv_norm = self.make_state_norm(1)
        if norm == "lrn":
            self.norm: nn.Module = nn.LocalResponseNorm(hidden_channels // 8 + 1, alpha=0.001, beta=0.75, k=1.0)
        elif norm == "bn":
            self.norm = nn.BatchNorm2d(hidden_channels)
        elif norm is None or norm == "none":
            self.norm = nn.Identity()
        else:
            raise ValueError(f"RCL norm must be 'lrn', 'bn' or None, got {norm!r}")

    def step_has_batch_norm(self) -> bool:
        return isinstance(self.norm, nn.BatchNorm2d)

    def step(self, xin_t: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        # A zero state adds nothing: skip the convolution so step 0 is exactly the feed-forward layer.
        z = xin_t if state is None else xin_t + self.state_conv_norm(self.state_conv(state))
        x = self.norm(F.relu(z))
        return x, x


class GRUCell(RecurrentCell):
    """ConvGRU as in Ballas et al. 2016 (GRU-RCN)::

        z_t = sigmoid(W_z * x_t + U_z * h_{t-1})
        r_t = sigmoid(W_r * x_t + U_r * h_{t-1})
        n_t = tanh(W * x_t + U * (r_t . h_{t-1}))
        h_t = (1 - z_t) . h_{t-1} + z_t . n_t

    ``input_conv`` holds ``[W_z; W_r; W]`` (and the biases), ``state_conv_zr`` holds ``[U_z; U_r]``, ``state_conv_n``
    holds ``U``. With ``preact_norm`` each of the six terms is normalised on its own (``W_z * x_t`` becomes
    ``N(W_z * x_t)``, and so on); ``chrono=T_max`` starts the update gate's bias at ``-log U[1, T_max - 1]``, so
    ``1 - z``, the share of the state kept, starts between 1/2 and ``1 - 1/T_max``. ``activation="relu"``: the
    candidate is ``n_t = ReLU(...)`` (Ravanelli et al.'s Li-GRU; the state is then a convex mix of non-negative
    candidates, so it stays non-negative and no larger than the largest candidate so far).
    """

    num_gates = 3

    option_names = (*RecurrentCell.option_names, "activation", "state_init", "chrono")

    def __init__(self, in_channels: int, hidden_channels: int, options: CellOptions | None = None, **kwargs):
        super().__init__(in_channels, hidden_channels, options, **kwargs)
        o = self.options
        self.activation, self.act = o.activation, get_activation(o.activation)
        self.state_conv_zr = same_conv(hidden_channels, 2 * hidden_channels, o.kernel_size, bias=False)
        self.state_conv_n = same_conv(hidden_channels, hidden_channels, o.kernel_size, bias=False)
        self.init_state_kernel(self.state_conv_n, o.state_init)  # the candidate's state term
        self.state_norm_zr, self.state_norm_n = self.make_state_norm(2), self.make_state_norm(1)
        if o.chrono is not None:
            self.input_bias(0).copy_(-chrono_bias(hidden_channels, o.chrono))

    def step(self, xin_t: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        x_z, x_r, x_n = xin_t.chunk(3, dim=1)
        if state is None:  # zero state: both state convolutions give zeros, skip them
            h = torch.sigmoid(x_z) * self.act(x_n)
            return h, h
        h_z, h_r = self.state_norm_zr(self.state_conv_zr(state)).chunk(2, dim=1)
        z = torch.sigmoid(x_z + h_z)
        r = torch.sigmoid(x_r + h_r)
        n = self.act(x_n + self.state_norm_n(self.state_conv_n(r * state)))
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
    The forget-gate bias starts at 1 so early training keeps the cell state; ``chrono=T_max`` starts it at
    ``log U[1, T_max - 1]`` and the input gate's at minus that instead. ``preact_norm`` normalises the input and
    the state terms of every gate separately; the cell state ``c`` is never normalised. ``activation="relu"`` puts
    a ReLU in place of both tanh (the candidate's and the output's).

    ``coupled=True``: the coupled input-forget gate (CIFG; Greff et al. 2017, "LSTM: A Search Space Odyssey"),
    ``i_t = 1 - f_t``, so the cell state is a running average of the candidates, as a GRU's state is (with the ReLU it
    cannot grow step after step); three gates ``f, c, o`` and, with peepholes, two peephole rows ``w_cf, w_co``.
    """

    num_gates = 4

    option_names = (*RecurrentCell.option_names, "activation", "state_init", "chrono")

    def __init__(self, in_channels: int, hidden_channels: int, options: CellOptions | None = None, *,
                 peephole: bool = False, peephole_size: tuple[int, int] | None = None, coupled: bool = False,
                 **kwargs):
        self.coupled = coupled
        self.num_gates = 3 if coupled else 4  # before the base class sizes the input convolution by it
        super().__init__(in_channels, hidden_channels, options, **kwargs)
        o = self.options
        self.activation, self.act = o.activation, get_activation(o.activation)
        self.state_conv = same_conv(hidden_channels, self.num_gates * hidden_channels, o.kernel_size, bias=False)
        forget = 0 if coupled else 1  # the gates' order: f, c, o coupled; i, f, c, o otherwise
        self.init_state_kernel(self.state_conv, o.state_init, block=forget + 1)  # the candidate g's state term
        self.state_conv_norm = self.make_state_norm(self.num_gates)
        if o.chrono is None:
            self.input_bias(forget).fill_(1.0)
        else:
            b_f = chrono_bias(hidden_channels, o.chrono)
            self.input_bias(forget).copy_(b_f)
            if not coupled:  # coupled, the input gate 1 - f_t starts at sigmoid(-b_f) by itself
                self.input_bias(0).copy_(-b_f)
        self.peephole = peephole or peephole_size is not None
        if self.peephole:
            shape = (self.num_gates - 1, hidden_channels, *(peephole_size or (1, 1)))
            self.peephole_weight = nn.Parameter(torch.zeros(shape))  # rows: (w_ci,) w_cf, w_co
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
            gates = xin_t + self.state_conv_norm(self.state_conv(h_prev))
        if self.coupled:
            (gf, gc, go), gi = gates.chunk(3, dim=1), None
        else:
            gi, gf, gc, go = gates.chunk(4, dim=1)
        pw = self.peephole_weight  # rows: (w_ci,) w_cf, w_co
        if pw is not None and c_prev is not None:
            gi = gi + pw[0] * c_prev if gi is not None else None
            gf = gf + pw[-2] * c_prev
        if gi is None:  # coupled: i_t = 1 - f_t
            f = torch.sigmoid(gf)
            i = 1 - f
        else:
            f, i = (torch.sigmoid(gf) if c_prev is not None else None), torch.sigmoid(gi)
        c = i * self.act(gc)
        if c_prev is not None:
            c = f * c_prev + c
        if pw is not None:
            go = go + pw[-1] * c
        h = torch.sigmoid(go) * self.act(c)
        return h, (h, c)


CELLS: dict[str, type[RecurrentCell]] = {"rnn": RNNCell, "rcl": RCLCell, "gru": GRUCell, "lstm": LSTMCell,
                                         "mingru": MinGRUCell}


def compile_steps(module: nn.Module, **options) -> int:
    """:meth:`RecurrentCell.compile_step` on every recurrent cell in ``module`` that loops over its step (not the
    minGRU, whose sequence is a scan) and whose step holds no BatchNorm; returns how many. Each layer and input shape
    is one compiled graph of the same code (the cell class's ``step``), so TorchDynamo's limit on the graphs kept per
    code object (8 by default, then it runs eagerly) is raised to 64."""
    cells = [m for m in module.modules() if isinstance(m, RecurrentCell) and not m.step_has_batch_norm()
             and type(m).forward_sequence is RecurrentCell.forward_sequence]
    for cell in cells:
        cell.compile_step(**options)
    if cells:  # torch.compile has loaded TorchDynamo
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    return len(cells)


def get_cell(cell: str | type[RecurrentCell]) -> type[RecurrentCell]:
    """A cell class from its name in :data:`CELLS`, or the class itself."""
    if isinstance(cell, type) and issubclass(cell, RecurrentCell):
        return cell
    try:
        return CELLS[cell]
    except (KeyError, TypeError):
        raise ValueError(f"unknown cell {cell!r}; known: {', '.join(CELLS)}") from None
