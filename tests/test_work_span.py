"""Work and span (vidrcnn.profiling.work_span) on two tiny models whose counts are worked out by hand: a 2-layer
recurrent net, whose span grows with T, and a 2-layer 3-D CNN, whose span does not."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from vidrcnn.models import get_model
from vidrcnn.profiling.work_span import work_span

B, D = 2, 5  # batch, features (input and state)
MM = 2 * B * D * D  # FLOPs of one (B, D) x (D, D) product


class TwoLayerRNN(nn.Module):
    """h_t = tanh(x_t W + h_{t-1} U) in two layers, from a zero state held as a buffer; the clip is (B, T, D)."""

    def __init__(self):
        super().__init__()
        self.w = nn.ParameterList(nn.Parameter(torch.randn(D, D)) for _ in range(2))
        self.u = nn.ParameterList(nn.Parameter(torch.randn(D, D)) for _ in range(2))
        self.register_buffer("h0", torch.zeros(B, D))

    def forward(self, x):
        for w, u in zip(self.w, self.u):
            h, outs = self.h0, []
            for t in range(x.shape[1]):
                h = torch.tanh(torch.mm(x[:, t], w) + torch.mm(h, u))  # x[:, t] is a view: no launch
                outs.append(h)
            x = torch.stack(outs, 1)
        return x


def test_a_recurrent_nets_span_grows_with_t_by_hand():
    # Per step and layer: two products, an add, a tanh (4 launches, 2 MM FLOPs); per layer one stack.
    # Launch depths, layer 1: h_t at 3t (mm(h) -> add -> tanh after h_{t-1}; mm(x_t) at 1 is never later), its
    # stack at 3T + 1. Layer 2: every mm(x_t) at 3T + 2, so g_1 = 3T + 4 (add, tanh), g_t = g_{t-1} + 3, and its
    # stack at 3T + 4 + 3(T - 1) + 1 = 6T + 2.
    # FLOPs on the longest chain: layer 1's T state products, layer 2's input product and its T - 1 state ones,
    # each counted for one of its B x D output elements (2 D FLOPs: a row times a column).
    for steps in (1, 2, 4):
        ws = work_span(TwoLayerRNN(), torch.randn(B, steps, D))
        assert ws.launches == 2 * (4 * steps + 1)
        assert ws.work_flops == 2 * 2 * steps * MM
        assert ws.span_launches == 6 * steps + 2
        assert ws.span_flops == 2 * steps * 2 * D
        assert ws.parallelism == pytest.approx(2 * B * D)  # whatever T: the work grows as fast as the chain


class TwoLayerC3D(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv3d(3, 4, 3, padding=1), nn.Conv3d(4, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv2(torch.relu(self.conv1(x))))


def test_a_3d_cnns_span_does_not_grow_with_t_by_hand():
    for steps in (1, 2, 4):
        ws = work_span(TwoLayerC3D(), torch.randn(1, 3, steps, 4, 4))
        out = steps * 4 * 4  # output positions per map
        flops = 2 * out * 4 * (3 * 27) + 2 * out * 4 * (4 * 27)  # 2 x MACs of each convolution
        assert ws.launches == ws.span_launches == 4  # conv, relu, conv, relu: one chain, whatever T
        assert ws.work_flops == flops
        assert ws.span_flops == 2 * (3 * 27) + 2 * (4 * 27)  # one output element of each convolution, whatever T
        assert ws.parallelism == pytest.approx(out * 4)  # grows with T: the frames are computed side by side
        assert ws.launch_parallelism == 1


def test_a_convgrus_span_grows_linearly_with_t_and_a_c3ds_stays_put():
    torch.manual_seed(0)
    gru, c3d = get_model("rcn_gru_s", num_classes=4), get_model("c3d_s", num_classes=4)
    gru_span = {t: work_span(gru, torch.randn(1, 3, t, 32, 32)).span_launches for t in (2, 4, 8)}
    assert gru_span[8] - gru_span[4] == 2 * (gru_span[4] - gru_span[2]) > 0  # a fixed number of launches per step
    c3d_span = {t: work_span(c3d, torch.randn(1, 3, t, 32, 32)).span_launches for t in (8, 16)}
    assert c3d_span[8] == c3d_span[16]


def test_the_tool_writes_the_table_the_counts_and_the_plot(tmp_path, capsys):
    from toolrun import load_tool

    from vidrcnn.cli import run_tool

    tool, out = load_tool("profile"), tmp_path / "ws"
    args = ["--work-span", "--models", "rcn_gru_s,c3d_s", "--lengths", "1,2,4", "--size", "16", "--out", str(out)]
    assert run_tool(tool.main, args) == 0
    rows = {(r["model"], r["T"]): r for r in json.loads((out / "work_span.json").read_text())["rows"]}
    assert rows.keys() == {(m, t) for m in ("rcn_gru_s", "c3d_s") for t in (1, 2, 4)}
    assert rows[("rcn_gru_s", 4)]["span_launches"] > rows[("rcn_gru_s", 2)]["span_launches"]
    assert rows[("c3d_s", 4)]["parallelism"] > rows[("c3d_s", 1)]["parallelism"]  # its frames side by side
    assert "| c3d_s | 4 |" in (out / "work_span.md").read_text() and (out / "work_span.png").is_file()
    (out / "work_span.md").write_text("my notes")
    (out / "work_span.json").unlink()  # so the folder's work_span.md is no run's of this mode
    capsys.readouterr()
    assert run_tool(tool.main, args) == 2 and "work_span.md: already exists" in capsys.readouterr().err
    assert (out / "work_span.md").read_text() == "my notes"
