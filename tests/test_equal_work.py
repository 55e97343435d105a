"""Latency at equal work (vidrcnn/profiling/equal_work.py, tools/profile.py --equal-work): the sweep's shapes, the
slowdown and its range, the shortest T a model accepts, and the tool's files. Timings are stubbed where a figure is
checked: what is tested is the arithmetic, not this machine's speed."""

from __future__ import annotations

import json

import pytest
import torch
from toolrun import load_tool
from torch import nn

from vidrcnn.cli import run_tool
from vidrcnn.profiling import equal_work as ew
from vidrcnn.profiling.measure import Timing


class Toy(nn.Module):
    """``sequential``: its cost is its clip length (one step per frame); else the same whatever the shape. Needs
    ``T >= min_t``."""

    def __init__(self, sequential: bool, min_t: int = 1):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.sequential, self.min_t, self.cost = sequential, min_t, 0

    def forward(self, x):
        if x.shape[2] < self.min_t:
            raise RuntimeError(f"needs {self.min_t} frames, got {x.shape[2]}")
        self.cost = x.shape[2] if self.sequential else 1
        return x.mean((1, 2, 3, 4), keepdim=False)[:, None] * self.w


def _stub_time_fn(model):
    def time_fn(fn, **kwargs):
        fn()
        c = float(model.cost)
        return Timing(c, 0.9 * c, 1.1 * c, 0.8 * c, 1.2 * c, 3)
    return time_fn


def test_the_sweep_holds_the_frames_per_call_and_lists_its_lengths():
    assert ew.lengths_for(64) == [1, 2, 4, 8, 16, 32, 64] and ew.lengths_for(12) == [1, 2, 4, 12]
    with pytest.raises(ValueError):
        ew.lengths_for(0)
    rows = ew.equal_work("toy", Toy(False), frames=8, size=4, iters=1, warmup=0)
    assert [(r["T"], r["batch"], r["frames"]) for r in rows] == [(1, 8, 8), (2, 4, 8), (4, 2, 8), (8, 1, 8)]


def test_slowdown_and_its_range_and_the_shortest_t_a_model_takes(monkeypatch):
    seq, par, late = Toy(True), Toy(False), Toy(True, min_t=2)
    rows = {}
    for name, model in (("seq", seq), ("par", par), ("late", late)):
        monkeypatch.setattr(ew, "time_fn", _stub_time_fn(model))
        rows[name] = ew.equal_work(name, model, frames=8, size=4, train=True, repeats=1)
    last = ew.slowdowns([r for rs in rows.values() for r in rs])
    assert last["seq"]["slowdown"] == pytest.approx(8.0) and last["par"]["slowdown"] == pytest.approx(1.0)
    assert last["seq"]["slowdown_low"] == pytest.approx(8 * 0.9 / 1.1) and last["seq"]["train_slowdown"] == 8.0
    assert ew.resolved(last["seq"], last["par"]) and not ew.resolved(last["par"], last["seq"])
    assert rows["late"][0]["error"] == "needs 2 frames, got 1" and last["late"]["from_T"] == 2
    assert last["late"]["slowdown"] == pytest.approx(4.0)  # 8 steps against the 2 it starts from
    table = ew.markdown([r for rs in rows.values() for r in rs])
    assert "| seq | 4 | 1 | 8 | 1 -> 8 | 8.00x (6.55 to 9.78) | 8.00x" in table and "- late T=1: needs 2" in table
    # Repeated, the range is that of the repeats' medians (identical here, so the range closes on the figure)
    monkeypatch.setattr(ew, "time_fn", _stub_time_fn(seq))
    again = ew.slowdowns(ew.equal_work("seq", seq, frames=8, size=4, repeats=3))["seq"]
    assert again["repeats"] == 3 and again["slowdown_low"] == again["slowdown_high"] == again["slowdown"] == 8.0


def test_the_tool_writes_the_sweep_and_keeps_foreign_files(tmp_path, capsys):
    tool = load_tool("profile")
    out = tmp_path / "ew"
    args = ["--models", "frame_avg_s,rcn_gru_s", "--equal-work", "4", "--iters", "1", "--warmup", "0", "--size", "16",
            "--out", str(out)]
    assert run_tool(tool.main, args) == 0
    data = json.loads((out / "equal_work.json").read_text())
    assert data["equal_work"] == 4 and {(r["model"], r["T"]) for r in data["rows"]} == {
        (m, t) for m in ("frame_avg_s", "rcn_gru_s") for t in (1, 2, 4)}
    assert "| rcn_gru_s | 16 | 1 | 4 |" in (out / "equal_work.md").read_text() and (out / "equal_work.png").is_file()
    assert run_tool(tool.main, args) == 0  # its own files are replaced
    (out / "equal_work.md").write_text("my notes")
    (out / "equal_work.json").unlink()
    capsys.readouterr()
    assert run_tool(tool.main, args) == 2 and "equal_work.md: already exists" in capsys.readouterr().err
    assert (out / "equal_work.md").read_text() == "my notes"
