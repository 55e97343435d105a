"""The parallel-scan cell: every scan equals the sequential recurrence, and streaming chunk by chunk equals the whole."""

from __future__ import annotations

import pytest
import torch

from vidrcnn.layers import ConvRecurrent, get_cell
from vidrcnn.layers.mingru import MinGRUCell, g, log_g
from vidrcnn.layers.scan import scan_hillis, scan_log, scan_sequential, scan_steps
from vidrcnn.models import RCN, get_model
from vidrcnn.models.backbones import build_stem
from vidrcnn.profiling import count_steps

SCANS = ("sequential", "hillis", "log")


def _by_hand(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    # h_t = sum_{s<=t} (prod_{s<r<=t} a_r) b_s + (prod_{r<=t} a_r) h0, written out with no recurrence at all.
    t_len = a.shape[1]
    out = []
    for t in range(t_len):
        h = torch.prod(a[:, : t + 1], dim=1) * h0
        for s in range(t + 1):
            h = h + torch.prod(a[:, s + 1: t + 1], dim=1) * b[:, s]
        out.append(h)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("t_len", [1, 2, 5, 8])
def test_scans_equal_the_written_out_recurrence(t_len: int) -> None:
    gen = torch.Generator().manual_seed(t_len)
    a = torch.rand(2, t_len, 3, 4, generator=gen, dtype=torch.float64)
    b = torch.rand(2, t_len, 3, 4, generator=gen, dtype=torch.float64) + 0.01
    h0 = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    expected = _by_hand(a, b, h0)
    torch.testing.assert_close(scan_sequential(a, b, h0, dim=1), expected)
    torch.testing.assert_close(scan_hillis(a, b, h0, dim=1), expected)
    torch.testing.assert_close(scan_log(a.log(), b.log(), h0, dim=1), expected)


def test_scans_along_another_axis_with_any_sign_and_no_initial_state() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 7, 4, generator=gen)
    b = torch.randn(2, 3, 7, 4, generator=gen)  # negative values: fine for the linear-space scans
    expected = _by_hand(a.movedim(2, 1), b.movedim(2, 1), torch.zeros(2, 3, 4)).movedim(1, 2)
    torch.testing.assert_close(scan_sequential(a, b, dim=2), expected)
    torch.testing.assert_close(scan_hillis(a, b, dim=2), expected)


def test_log_scan_stays_accurate_over_long_sequences() -> None:
    # prod a over 512 steps is ~1e-300: a cumprod-and-divide formula would give inf/nan here.
    gen = torch.Generator().manual_seed(1)
    k = torch.randn(1, 512, 8, generator=gen) * 3
    a, b = torch.sigmoid(-k), torch.sigmoid(k) * 0.7
    out = scan_log(torch.nn.functional.logsigmoid(-k), torch.nn.functional.logsigmoid(k) + torch.log(torch.tensor(0.7)),
                   dim=1)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, scan_sequential(a, b, dim=1), atol=1e-5, rtol=1e-4)


def test_scan_steps_count_the_critical_path() -> None:
    assert [scan_steps(64, m) for m in SCANS] == [64, 6, 12]
    assert scan_steps(5, "hillis") == 3
    assert scan_steps(1, "log") == 1
    with pytest.raises(ValueError, match="unknown scan"):
        scan_steps(8, "magic")


def test_g_is_positive_continuous_and_log_g_is_its_log() -> None:
    v = torch.linspace(-30, 30, 601, dtype=torch.float64)
    assert (g(v) > 0).all()
    assert g(torch.tensor(0.0)) == 0.5 == torch.sigmoid(torch.tensor(0.0))
    torch.testing.assert_close(log_g(v), torch.log(g(v)))


def test_g_is_the_same_function_with_and_without_autograd() -> None:
    # Without autograd g takes max(v + 0.5, sigmoid(v)), with it the piecewise select: they must agree.
    v = torch.cat([torch.linspace(-30, 30, 6001), torch.tensor([0.0, -1e-8, 1e-8, -1e-3, 1e-3])])
    with torch.no_grad():
        fast = g(v)
    graph = g(v.clone().requires_grad_())
    assert graph.requires_grad
    torch.testing.assert_close(fast, graph.detach(), rtol=0, atol=1e-7)
    piecewise = torch.where(v >= 0, v + 0.5, torch.sigmoid(v))
    torch.testing.assert_close(fast, piecewise, rtol=0, atol=1e-7)


def _layers(scan: str, c_in: int = 4, c_hidden: int = 6) -> tuple[ConvRecurrent, ConvRecurrent]:
    torch.manual_seed(0)
    fast = ConvRecurrent(c_in, c_hidden, cell=MinGRUCell, scan=scan).double()
    plain = ConvRecurrent(c_in, c_hidden, cell=MinGRUCell, scan=scan, batch_input_conv=False).double()
    plain.load_state_dict(fast.state_dict())
    return fast, plain


@pytest.mark.parametrize("scan", SCANS)
def test_sequence_mode_equals_step_by_step_with_gradients(scan: str) -> None:
    fast, plain = _layers(scan)
    x = torch.randn(2, 4, 7, 5, 5, dtype=torch.float64, requires_grad=True)
    h0 = torch.rand(2, 6, 5, 5, dtype=torch.float64)
    out_fast, s_fast = fast(x, h0)
    out_plain, s_plain = plain(x, h0)
    torch.testing.assert_close(out_fast, out_plain)
    torch.testing.assert_close(s_fast, s_plain)
    grads = [torch.autograd.grad(o.square().sum(), [x, *m.parameters()]) for o, m in
             ((out_fast, fast), (out_plain, plain))]
    for g_fast, g_plain in zip(*grads):
        torch.testing.assert_close(g_fast, g_plain)


@pytest.mark.parametrize("scan", SCANS)
def test_layer_chunked_equals_whole(scan: str) -> None:
    fast, _ = _layers(scan)
    x = torch.randn(1, 4, 9, 5, 5, dtype=torch.float64)
    whole, state = fast(x)
    first, s = fast(x[:, :, :4])
    second, s = fast(x[:, :, 4:], s)
    torch.testing.assert_close(torch.cat([first, second], dim=2), whole)
    torch.testing.assert_close(s, state)


def _small_rcn(**cell_kwargs) -> RCN:
    # The rcn_*_s layout built from the class, so these tests do not depend on the registry.
    stem, channels = build_stem("small", widths=(8, 16), strides=(2, 2))
    return RCN(num_classes=5, cell=MinGRUCell, stem=stem, stem_channels=channels, channels=(16, 24),
               pool_after=(True, False), cell_kwargs=cell_kwargs).eval()


def test_model_streams_chunk_by_chunk_and_every_scan_agrees() -> None:
    torch.manual_seed(0)
    model = _small_rcn()
    x = torch.randn(1, 3, 9, 32, 32)
    with torch.no_grad():
        whole, _ = model.stream(x)
        first, state = model.stream(x[:, :, :4])
        second, _ = model.stream(x[:, :, 4:], state)
        torch.testing.assert_close(torch.cat([first, second], dim=1), whole, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(model(x), whole[:, -1], atol=1e-5, rtol=1e-4)
        for scan in ("hillis", "log"):
            other = _small_rcn(scan=scan)
            other.load_state_dict(model.state_dict())
            torch.testing.assert_close(other(x), model(x), atol=1e-5, rtol=1e-4)


def test_profiler_counts_log_depth_for_the_scan_and_t_for_sequential_cells() -> None:
    x = torch.randn(1, 3, 16, 32, 32)
    for scan, per_layer in (("hillis", 4), ("log", 8), ("sequential", 16)):
        model = _small_rcn(scan=scan)
        with torch.no_grad(), count_steps(model) as steps:
            model(x)
        assert steps.steps == 2 * per_layer, scan  # two recurrent layers


def test_registered_as_cell_and_models() -> None:
    assert get_cell("mingru") is MinGRUCell
    with pytest.raises(ValueError, match="scan"):
        MinGRUCell(3, 4, scan="fft")
    for name in ("rcn_mingru_s", "rcn_mingru_m"):
        model = get_model(name, num_classes=5)
        assert model.is_causal
        assert all(isinstance(layer.cell, MinGRUCell) for layer in model.layers)
