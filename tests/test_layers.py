"""Recurrent conv cells and the layer that runs them: the equations, batched vs step-by-step, chunked state."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidrcnn.layers import (
    CELLS,
    CellOptions,
    ConvRecurrent,
    GRUCell,
    MinGRUCell,
    PerFrame,
    RCLCell,
    RecurrentCell,
    RNNCell,
    compile_steps,
    get_cell,
)

B, C_IN, T, H, W = 2, 3, 4, 8, 8
HIDDEN = 16  # LRN size 16 // 8 + 1 = 3

pytestmark = pytest.mark.usefixtures("one_thread")



def conv(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2)


def lrn(x: Tensor, size: int, alpha: float = 0.001, beta: float = 0.75) -> Tensor:
    """Liang & Hu's eq. 4 written out: x / (1 + alpha/size * sum of squares over `size` neighbouring maps)^beta."""
    c = x.shape[1]
    out = torch.empty_like(x)
    for k in range(c):
        lo, hi = max(0, k - size // 2), min(c, k + (size - 1) // 2 + 1)
        out[:, k] = x[:, k] / (1 + alpha / size * (x[:, lo:hi] ** 2).sum(dim=1)) ** beta
    return out


def gate_norm(norm: torch.nn.Module, gate: int, v: Tensor) -> Tensor:
    """Gate ``gate``'s term ``v`` through ``norm`` (a cell's GroupNorm over stacked gates) computed for that gate
    alone: its own groups, scale and shift. Identity when the cell has no pre-activation norm."""
    n = v.shape[1]
    if isinstance(norm, torch.nn.BatchNorm2d):  # eval mode: running statistics, per map
        sl = slice(gate * n, (gate + 1) * n)
        return F.batch_norm(v, norm.running_mean[sl], norm.running_var[sl], norm.weight[sl], norm.bias[sl],
                            False, 0.0, norm.eps)
    if not isinstance(norm, torch.nn.GroupNorm):
        return v
    groups = norm.num_groups * n // norm.num_channels
    weight = norm.weight[gate * n:(gate + 1) * n]
    bias = None if norm.bias is None else norm.bias[gate * n:(gate + 1) * n]
    return F.group_norm(v, groups, weight, bias, norm.eps)


def reference(cell: RecurrentCell, x: Tensor) -> Tensor:
    """The cell's equations evaluated step by step with F.conv2d on its weights; returns (B, C, T, H, W).

    Every input term is ``N_x(W * x_t + b)`` and every state term ``N_h(U * h)``, each gate normalised on its own
    (identity without ``preact_norm``); the LSTM's cell state is not normalised."""
    wx, bx = cell.input_conv.weight, cell.input_conv.bias
    n = cell.hidden_channels
    h = x.new_zeros(x.shape[0], n, *x.shape[3:])
    c = torch.zeros_like(h)

    frames = cell.input_frames
    xp = F.pad(x, (0, 0, 0, 0, frames - 1, 0))  # zero frames before the first, for the causal input kernel

    def inp(xt: Tensor, k: int) -> Tensor:
        v = conv(xt, wx[k * n:(k + 1) * n], bx[k * n:(k + 1) * n])
        if frames > 1:  # + the previous frames through the past kernel (frames t-k+1 .. t-1)
            w = cell.input_conv_past.weight[k * n:(k + 1) * n]
            v = v + F.conv3d(xp[:, :, t:t + frames - 1], w, padding=(0, w.shape[-1] // 2, w.shape[-1] // 2))[:, :, 0]
        return gate_norm(cell.input_norm, k, v)

    act = torch.relu if getattr(cell, "activation", "tanh") == "relu" else torch.tanh  # where the equations say tanh
    outs = []
    for t in range(x.shape[2]):
        xt = x[:, :, t]
        if isinstance(cell, RCLCell):
            z = inp(xt, 0) + gate_norm(cell.state_conv_norm, 0, conv(h, cell.state_conv.weight))  # h: x(t-1)
            h = lrn(F.relu(z), n // 8 + 1)
        elif isinstance(cell, RNNCell):
            h = act(inp(xt, 0) + gate_norm(cell.state_conv_norm, 0, conv(h, cell.state_conv.weight)))
        elif isinstance(cell, GRUCell):
            uz, ur = cell.state_conv_zr.weight.split(n)
            z = torch.sigmoid(inp(xt, 0) + gate_norm(cell.state_norm_zr, 0, conv(h, uz)))
            r = torch.sigmoid(inp(xt, 1) + gate_norm(cell.state_norm_zr, 1, conv(h, ur)))
            cand = act(inp(xt, 2) + gate_norm(cell.state_norm_n, 0, conv(r * h, cell.state_conv_n.weight)))
            h = (1 - z) * h + z * cand
        elif isinstance(cell, MinGRUCell):
            z = torch.sigmoid(inp(xt, 0))
            v = inp(xt, 1)
            h = (1 - z) * h + z * torch.where(v >= 0, v + 0.5, torch.sigmoid(v))
        else:  # LSTM, gate order i, f, c, o; coupled: f, c, o with i = 1 - f
            u = cell.state_conv.weight.split(n)
            g = 1 if cell.coupled else 0  # the first gate's index past i
            pw = cell.peephole_weight if cell.peephole_weight is not None else torch.zeros(3 - g, n, 1, 1)

            def pre(k: int) -> Tensor:
                return inp(xt, k - g) + gate_norm(cell.state_conv_norm, k - g, conv(h, u[k - g]))  # noqa: B023

            f = torch.sigmoid(pre(1) + pw[1 - g] * c)
            i = 1 - f if cell.coupled else torch.sigmoid(pre(0) + pw[0] * c)
            c = f * c + i * act(pre(2))
            o = torch.sigmoid(pre(3) + pw[2 - g] * c)
            h = o * act(c)
        outs.append(h)
    return torch.stack(outs, dim=2)


def randomize_norms(layer: torch.nn.Module) -> None:
    """Norm scales start at 1 and shifts at 0: give them values that make a wrong group or gate show."""
    for m in layer.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.normal_(m.bias, std=0.3)
            m.running_mean.normal_(std=0.3)
            m.running_var.uniform_(0.5, 2.0)
        if isinstance(m, torch.nn.GroupNorm):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            if m.bias is not None:
                torch.nn.init.normal_(m.bias, std=0.3)


CELL_CASES = [("rnn", {}), ("rcl", {}), ("gru", {}), ("lstm", {}), ("lstm", {"peephole": True}),
              ("lstm", {"peephole_size": (H, W)}), ("lstm", {"coupled": True}),
              ("lstm", {"coupled": True, "peephole": True})]
# Every cell with its input and state pre-activations normalised (and the gated ones chrono-initialised).
NORM_CASES = [("rnn", {"preact_norm": "group"}), ("rcl", {"preact_norm": "layer"}),
              ("gru", {"preact_norm": "group", "chrono": 8}), ("gru", {"preact_norm": "layer"}),
              ("lstm", {"preact_norm": "group", "chrono": 8, "peephole": True}),
              ("mingru", {"preact_norm": "group", "chrono": 8, "scan": "sequential"}),
              ("gru", {"preact_norm": "batch", "input_frames": 3}), ("lstm", {"input_frames": 2}),
              ("rnn", {"preact_norm": "batch", "input_frames": 2}),
              ("mingru", {"preact_norm": "batch", "input_frames": 2, "scan": "sequential"}),
              ("gru", {"preact_norm": "batch", "state_norm": None, "chrono": 8}),
              ("lstm", {"preact_norm": "group", "state_norm": "layer"}),
              # a ReLU where the equations have tanh (Li-GRU, IRNN)
              ("gru", {"preact_norm": "batch", "state_norm": None, "activation": "relu"}),
              ("rnn", {"preact_norm": "batch", "activation": "relu"}),
              ("lstm", {"preact_norm": "batch", "activation": "relu", "peephole": True}),
              ("lstm", {"preact_norm": "batch", "activation": "relu", "coupled": True, "chrono": 8})]


@pytest.mark.parametrize(("cell", "kw"), CELL_CASES + NORM_CASES)
def test_cell_matches_its_equations(cell, kw):
    torch.manual_seed(0)
    layer = ConvRecurrent(C_IN, HIDDEN, cell=cell, **kw).eval()  # eval: BatchNorm with its running statistics
    randomize_norms(layer)
    if getattr(layer.cell, "peephole_weight", None) is not None:
        torch.nn.init.normal_(layer.cell.peephole_weight)  # starts at zero: make the peephole terms count
    x = torch.randn(B, C_IN, T, H, W)
    out, _ = layer(x)
    assert out.shape == (B, HIDDEN, T, H, W)
    torch.testing.assert_close(out, reference(layer.cell, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("cell", "kw"), CELL_CASES + NORM_CASES + [("rcl", {"norm": "bn"})])
def test_batched_input_conv_equals_step_by_step(cell, kw):
    torch.manual_seed(0)
    batched = ConvRecurrent(C_IN, HIDDEN, cell=cell, **kw).eval()
    randomize_norms(batched)
    stepwise = ConvRecurrent(C_IN, HIDDEN, cell=cell, batch_input_conv=False, **kw).eval()
    stepwise.load_state_dict(batched.state_dict())
    x = torch.randn(B, C_IN, T, H, W, requires_grad=True)
    out_b, _ = batched(x)
    (grad_b,) = torch.autograd.grad(out_b.square().sum(), x)
    out_s, _ = stepwise(x)
    (grad_s,) = torch.autograd.grad(out_s.square().sum(), x)
    torch.testing.assert_close(out_b, out_s, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_b, grad_s, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("cell", "kw"), [(c, {}) for c in CELLS] + NORM_CASES)
def test_state_carries_over_chunks(cell, kw):
    torch.manual_seed(0)
    layer = ConvRecurrent(C_IN, HIDDEN, cell=cell, **kw).eval()
    randomize_norms(layer)
    x = torch.randn(B, C_IN, 5, H, W)
    whole, state_whole = layer(x)
    a, state = layer(x[:, :, :2])
    b, state = layer(x[:, :, 2:], state)
    torch.testing.assert_close(torch.cat([a, b], dim=2), whole)
    for s1, s2 in zip(torch.utils._pytree.tree_leaves(state), torch.utils._pytree.tree_leaves(state_whole)):
        torch.testing.assert_close(s1, s2)


def _compiled_against_eager(cell: str, kw: dict, backend: str, *, modes=(True, False), tol=(1e-4, 1e-5)) -> None:
    """A layer with its cell's step compiled gives the eager layer's outputs, state and gradients, in training
    (BatchNorm on batch statistics) and in eval; its state dict is the eager one's."""
    torch.manual_seed(0)
    eager = ConvRecurrent(C_IN, HIDDEN, cell=cell, **kw)
    randomize_norms(eager)
    compiled = copy.deepcopy(eager)
    assert compile_steps(compiled, backend=backend) == 1
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    x = torch.randn(B, C_IN, T, H, W, requires_grad=True)
    rtol, atol = tol
    for train in modes:
        eager.train(train), compiled.train(train)
        (out_e, state_e), (out_c, state_c) = eager(x), compiled(x)
        torch.testing.assert_close(out_c, out_e, rtol=rtol, atol=atol)
        torch.testing.assert_close(torch.utils._pytree.tree_leaves(state_c), torch.utils._pytree.tree_leaves(state_e),
                                   rtol=rtol, atol=atol)
        grads = [torch.autograd.grad(out.square().sum(), [x, *layer.parameters()])
                 for out, layer in ((out_e, eager), (out_c, compiled))]
        torch.testing.assert_close(grads[1], grads[0], rtol=rtol, atol=atol)


@pytest.mark.parametrize(("cell", "kw"), [(c, {}) for c in ("rnn", "rcl", "gru", "lstm")]
                         + [("gru", {"preact_norm": "group"}), ("lstm", {"preact_norm": "batch", "peephole": True}),
                            ("rcl", {"norm": None, "preact_norm": "batch"})])
def test_a_compiled_step_changes_nothing_but_speed(cell, kw):
    _compiled_against_eager(cell, kw, backend="aot_eager")  # TorchDynamo and AOTAutograd, no code generated


def test_a_step_compiled_to_cpu_kernels_matches_the_eager_step():
    # inductor's C++ kernels, in training (forward and backward compiled); they sum in another order than eager
    _compiled_against_eager("gru", {"preact_norm": "group"}, backend="inductor", modes=(True,), tol=(1e-3, 1e-4))


def test_a_step_holding_a_batch_norm_stays_eager():
    layer = ConvRecurrent(C_IN, HIDDEN, cell="rcl", norm="bn")
    assert compile_steps(layer, backend="aot_eager") == 0
    with pytest.raises(ValueError, match="BatchNorm"):
        layer.cell.compile_step()


def test_a_copy_of_a_compiled_cell_runs_eagerly_on_its_own_weights():
    torch.manual_seed(0)
    layer = ConvRecurrent(C_IN, HIDDEN, cell="gru")
    compile_steps(layer, backend="aot_eager")
    twin = copy.deepcopy(layer)
    assert "_compiled_step" in vars(layer.cell) and "_compiled_step" not in vars(twin.cell)
    with torch.no_grad():
        twin.cell.state_conv_zr.weight.mul_(2)
    x = torch.randn(B, C_IN, T, H, W)
    assert not torch.allclose(layer(x)[0], twin(x)[0])


def test_rcl_first_step_is_feed_forward_only():
    torch.manual_seed(0)
    layer = ConvRecurrent(C_IN, HIDDEN, cell="rcl")
    x = torch.randn(B, C_IN, 2, H, W)
    out, _ = layer(x)
    expected = lrn(F.relu(conv(x[:, :, 0], layer.cell.input_conv.weight, layer.cell.input_conv.bias)), 3)
    torch.testing.assert_close(out[:, :, 0], expected)
    assert isinstance(layer.cell.norm, torch.nn.LocalResponseNorm) and layer.cell.norm.size == HIDDEN // 8 + 1


def test_forward_static_iterates_one_still_input():
    torch.manual_seed(0)
    layer = ConvRecurrent(C_IN, HIDDEN, cell="rcl")
    u = torch.randn(B, C_IN, H, W)
    out, _ = layer(u.unsqueeze(2).expand(-1, -1, 4, -1, -1))
    torch.testing.assert_close(layer.forward_static(u, 4), out[:, :, -1])


def test_get_cell_accepts_names_and_classes():
    assert get_cell("gru") is CELLS["gru"]
    assert get_cell(RCLCell) is RCLCell
    with pytest.raises(ValueError, match="unknown cell"):
        get_cell("transformer")


def test_a_cell_may_bring_its_own_sequence_forward():
    """The hook a parallel-scan cell uses: ConvRecurrent hands it the whole input-conv sequence at once."""

    class CumSumCell(RecurrentCell):
        def forward_sequence(self, xin, state=None):
            h = xin.cumsum(dim=1) + (0 if state is None else state.unsqueeze(1))
            return h, h[:, -1]

    layer = ConvRecurrent(C_IN, HIDDEN, cell=CumSumCell)
    x = torch.randn(B, C_IN, T, H, W)
    out, state = layer(x)
    xin = torch.stack([layer.cell.input_conv(x[:, :, t]) for t in range(T)], dim=2)
    torch.testing.assert_close(out, xin.cumsum(dim=2))
    torch.testing.assert_close(state, out[:, :, -1])


def test_per_frame_applies_the_module_to_each_frame():
    module = torch.nn.Conv2d(3, 5, 3, stride=2, padding=1)
    x = torch.randn(B, 3, T, H, W)
    out = PerFrame(module)(x)
    assert out.shape == (B, 5, T, H // 2, W // 2)
    torch.testing.assert_close(out[:, :, 2], module(x[:, :, 2]))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="odd"):
        ConvRecurrent(C_IN, HIDDEN, cell="rnn", kernel_size=2)
    with pytest.raises(ValueError, match="norm"):
        ConvRecurrent(C_IN, HIDDEN, cell="rcl", norm="group")
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        ConvRecurrent(C_IN, HIDDEN)(torch.randn(B, C_IN, H, W))


def test_chrono_initialisation_sets_the_memory_gate_biases():
    t_max = 16
    gru = ConvRecurrent(C_IN, HIDDEN, cell="gru", chrono=t_max).cell
    b_z = gru.input_conv.bias[:HIDDEN]  # update gate: 1 - z, the share of the state kept, starts in [1/2, 1 - 1/T]
    assert (b_z <= 0).all() and (b_z >= -torch.log(torch.tensor(t_max - 1.0)) - 1e-6).all()
    assert b_z.std() > 0.1  # a spread of time scales, not one value
    lstm = ConvRecurrent(C_IN, HIDDEN, cell="lstm", chrono=t_max, preact_norm="group").cell
    b_i, b_f = lstm.input_norm.bias[:HIDDEN], lstm.input_norm.bias[HIDDEN:2 * HIDDEN]  # with a norm, its shift
    torch.testing.assert_close(b_i, -b_f)
    assert (b_f >= 0).all() and (b_f <= torch.log(torch.tensor(t_max - 1.0)) + 1e-6).all()
    plain = ConvRecurrent(C_IN, HIDDEN, cell="lstm").cell  # today's default: forget bias 1
    assert (plain.input_conv.bias[HIDDEN:2 * HIDDEN] == 1).all()


@pytest.mark.parametrize("cell", ["rnn", "rcl", "gru", "lstm", "mingru"])
def test_norm_scale_starts_every_norm_scale_there_and_changes_nothing_else(cell):
    torch.manual_seed(0)
    scaled = ConvRecurrent(C_IN, HIDDEN, cell=cell, preact_norm="group", norm_scale=0.1).cell
    torch.manual_seed(0)
    plain = ConvRecurrent(C_IN, HIDDEN, cell=cell, preact_norm="group").cell
    norms = [n for n, m in scaled.named_modules() if isinstance(m, nn.GroupNorm)]
    assert "input_norm" in norms and (len(norms) > 1) == (cell != "mingru")  # the state norms too, where there are
    for name, p in scaled.named_parameters():
        if name.removesuffix(".weight") in norms:
            assert (p == 0.1).all(), name
        else:  # the same draw for everything else, chrono and forget biases included
            torch.testing.assert_close(p, dict(plain.named_parameters())[name])
    with pytest.raises(ValueError, match="norm_scale=0.1 needs a preact_norm"):
        ConvRecurrent(C_IN, HIDDEN, cell=cell, norm_scale=0.1)


def test_identity_state_init_passes_the_state_through_unchanged():
    """IRNN: with W_h the identity and a zero input term, one step of the ReLU cell returns its (non-negative)
    state as it was."""
    cell = ConvRecurrent(C_IN, HIDDEN, cell="rnn", activation="relu", state_init="identity").cell
    state = torch.rand(2, HIDDEN, 6, 6)
    h, _ = cell.step(torch.zeros(2, HIDDEN, 6, 6), state)
    torch.testing.assert_close(h, state)
    default = ConvRecurrent(C_IN, HIDDEN, cell="rnn", activation="relu").cell
    assert not torch.allclose(default.step(torch.zeros(2, HIDDEN, 6, 6), state)[0], state)
    with pytest.raises(ValueError, match="state_init must be"):
        ConvRecurrent(C_IN, HIDDEN, cell="rnn", state_init="orthogonal")


@pytest.mark.parametrize("cell, conv, block", [("rnn", "state_conv", 0), ("rcl", "state_conv", 0),
                                                ("gru", "state_conv_n", 0), ("lstm", "state_conv", 2)])
def test_identity_state_init_sets_the_candidates_state_kernel_and_nothing_else(cell, conv, block):
    torch.manual_seed(0)
    identity = ConvRecurrent(C_IN, HIDDEN, cell=cell, state_init="identity").cell
    torch.manual_seed(0)
    plain = ConvRecurrent(C_IN, HIDDEN, cell=cell).cell
    dirac = nn.init.dirac_(torch.empty(HIDDEN, HIDDEN, 3, 3))
    rows = slice(block * HIDDEN, (block + 1) * HIDDEN)
    for name, p in identity.named_parameters():
        expected = dict(plain.named_parameters())[name].detach().clone()
        if name == f"{conv}.weight":
            expected[rows] = dirac
        torch.testing.assert_close(p, expected, msg=name)


def test_preact_norm_keeps_frames_and_samples_apart():
    """Statistics of one frame of one sample only: changing another sample or a later frame changes nothing."""
    torch.manual_seed(0)
    layer = ConvRecurrent(C_IN, HIDDEN, cell="gru", preact_norm="group")
    x = torch.randn(B, C_IN, T, H, W)
    y = x.clone()
    y[1] = torch.randn_like(y[1])  # another sample
    y[0, :, 2:] = 10 * torch.randn_like(y[0, :, 2:])  # later frames of this one
    out_x, _ = layer(x)
    out_y, _ = layer(y)
    torch.testing.assert_close(out_x[0, :, :2], out_y[0, :, :2])


def test_bad_preact_options_are_refused():
    with pytest.raises(ValueError, match="preact_norm"):
        ConvRecurrent(C_IN, HIDDEN, cell="gru", preact_norm="instance")
    with pytest.raises(ValueError, match="T_max"):
        ConvRecurrent(C_IN, HIDDEN, cell="gru", chrono=2)
    with pytest.raises(TypeError):  # no gates, no gate biases to initialise
        ConvRecurrent(C_IN, HIDDEN, cell="rnn", chrono=16)
    with pytest.raises(ValueError, match="state_norm"):
        ConvRecurrent(C_IN, HIDDEN, cell="gru", state_norm="batch")  # batch statistics of a growing state
    with pytest.raises(ValueError, match="input_frames"):
        ConvRecurrent(C_IN, HIDDEN, cell="gru", input_frames=0)
    with pytest.raises(ValueError, match="forward_static"):
        ConvRecurrent(C_IN, HIDDEN, cell="rcl", input_frames=2).forward_static(torch.randn(B, C_IN, H, W), 3)


def test_activation_option_replaces_tanh_and_refuses_unknown_names():
    torch.manual_seed(0)
    x = torch.randn(B, C_IN, T, H, W)
    for cell in ("rnn", "gru"):
        out, _ = ConvRecurrent(C_IN, HIDDEN, cell=cell, activation="relu")(x)
        assert out.min() >= 0  # ReLU candidates, mixed convexly (GRU) or directly (vanilla): never negative
        out, _ = ConvRecurrent(C_IN, HIDDEN, cell=cell)(x)
        assert out.min() < 0  # tanh: both signs
    with pytest.raises(ValueError, match="activation must be one of"):
        ConvRecurrent(C_IN, HIDDEN, cell="gru", activation="gelu")
    with pytest.raises(TypeError):  # RCL has its ReLU by definition, minGRU its g: no option to give
        ConvRecurrent(C_IN, HIDDEN, cell="rcl", activation="relu")


def test_cells_take_their_shared_options_as_one_object_or_as_keywords():
    options = CellOptions(kernel_size=5, preact_norm="group", activation="relu", chrono=8)
    torch.manual_seed(0)
    by_object = GRUCell(C_IN, HIDDEN, options)
    torch.manual_seed(0)
    by_keywords = GRUCell(C_IN, HIDDEN, kernel_size=5, preact_norm="group", activation="relu", chrono=8)
    assert by_object.options == by_keywords.options == options
    for (name, a), (other, b) in zip(by_object.state_dict().items(), by_keywords.state_dict().items(), strict=True):
        assert name == other and torch.equal(a, b), name
    assert by_object.state_conv_zr.kernel_size == (5, 5) and by_object.act is torch.relu
    # a keyword beside the object overrides it
    assert GRUCell(C_IN, HIDDEN, options, chrono=None).options.chrono is None
    with pytest.raises(TypeError, match="takes no 'chrono' option"):  # the vanilla cell has no gate to start
        RNNCell(C_IN, HIDDEN, options)
    with pytest.raises(TypeError, match="unexpected keyword argument.*'kernel'"):
        GRUCell(C_IN, HIDDEN, kernel=3)


def test_compile_steps_leaves_the_scan_of_a_mingru_alone():
    assert compile_steps(ConvRecurrent(C_IN, HIDDEN, cell="mingru"), backend="aot_eager") == 0
