"""The profiler: what it measures is counted right, and the tool writes its files with the expected columns."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from toolrun import load_tool
from torch import nn

from vidrcnn.cli import run_tool
from vidrcnn.errors import ConfigError
from vidrcnn.layers import ConvRecurrent
from vidrcnn.layers.mingru import MinGRUCell
from vidrcnn.profiling import COLUMNS, count_flops, count_steps, fit_slopes, time_fn
from vidrcnn.profiling.run import ProfileOptions

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "profile.py"


def test_time_fn_runs_warmup_then_the_timed_calls() -> None:
    calls = []
    timing = time_fn(lambda: calls.append(1), warmup=3, iters=7)
    assert len(calls) == 10
    assert timing.iters == 7
    assert timing.min_ms <= timing.q25_ms <= timing.median_ms <= timing.q75_ms <= timing.max_ms


def test_flops_count_convolutions_and_the_fused_lstm() -> None:
    conv = nn.Conv2d(3, 8, 3)
    with torch.no_grad():
        assert count_flops(lambda: conv(torch.zeros(1, 3, 8, 8)), conv) == 2 * 3 * 9 * 8 * 6 * 6
    lstm = nn.LSTM(16, 32, batch_first=True)
    with torch.no_grad():
        flops = count_flops(lambda: lstm(torch.zeros(2, 8, 16)), lstm)
    assert flops == 2 * 2 * 8 * (4 * 32) * (16 + 32)  # 2 FLOPs per MAC, B, T, gates, input + hidden


def test_steps_on_the_critical_path() -> None:
    x = torch.zeros(1, 4, 5, 6, 6)
    models = {
        "lstm_2_layers": (nn.LSTM(4, 8, num_layers=2, batch_first=True), torch.zeros(1, 5, 4), 10),
        "conv_gru": (ConvRecurrent(4, 8, cell="gru"), x, 5),
        "conv_gru_step_by_step": (ConvRecurrent(4, 8, cell="gru", batch_input_conv=False), x, 5),
        "mingru_hillis": (ConvRecurrent(4, 8, cell=MinGRUCell, scan="hillis"), x, 3),
        "conv3d": (nn.Conv3d(4, 8, 3, padding=1), x, 0),
    }
    for name, (model, inp, expected) in models.items():
        with torch.no_grad(), count_steps(model) as steps:
            model(inp)
        assert steps.steps == expected, name


_PEAK_PROBE = """
import json, torch
from vidrcnn.profiling import peak_memory
with peak_memory("cpu") as mem:
    block = torch.ones(16 * 2**20)  # 64 MiB, written so the pages are resident
    assert block[-1] == 1
print(json.dumps(mem))
"""


def test_peak_memory_sees_a_large_allocation_on_cpu() -> None:
    # In a fresh process: inside the test session, malloc may hand back pages an earlier test left resident, and
    # the resident set would not grow at all.
    proc = subprocess.run([sys.executable, "-c", _PEAK_PROBE], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    mem = json.loads(proc.stdout.strip().splitlines()[-1])
    assert mem["peak_mem_delta_mb"] >= 48
    assert mem["peak_mem_mb"] >= mem["peak_mem_delta_mb"]


def test_tensor_peak_and_held_for_backward_count_exact_bytes() -> None:
    from vidrcnn.profiling import held_for_backward, tensor_peak_memory

    w = torch.ones(2**18, requires_grad=True)  # a parameter: held anyway, not counted
    with tensor_peak_memory() as peak:
        with held_for_backward() as held:
            a = torch.exp(w)  # exp saves its 1 MiB output for backward
            b = (a * 2).sum()  # saves only the scalar 2's wrapped tensor, nothing of a's size
        tmp = torch.empty(2**20)  # 4 MiB, live together with a
        del tmp
    assert 1.0 <= held["held_for_backward_mb"] < 1.01
    assert 5.0 <= peak["tensor_peak_mb"] < 6.5
    b.backward()
    assert torch.allclose(w.grad, 2 * a)


def test_fit_slopes_recovers_the_growth_exponent() -> None:
    rows = [{"model": m, "T": t, "latency_median_ms": f(t), "error": ""}
            for m, f in (("linear", lambda t: 3.0 * t), ("flat", lambda t: 5.0), ("quadratic", lambda t: t * t))
            for t in (4, 8, 16, 32)]
    fits = fit_slopes(rows)
    assert fits["linear"]["slope"] == pytest.approx(1.0)
    assert fits["flat"]["slope"] == pytest.approx(0.0, abs=1e-9)
    assert fits["quadratic"]["slope"] == pytest.approx(2.0)
    assert fits["linear"]["growth"] == pytest.approx(8.0)


def test_tool_writes_every_file_with_the_expected_columns(tmp_path: Path) -> None:
    out = tmp_path / "prof"
    cmd = [sys.executable, str(TOOL), "--models", "rcn_gru_s,c3d_s", "--lengths", "4,2", "--size", "16",
           "--iters", "1", "--warmup", "0", "--train", "--threads", "1", "--out", str(out)]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "slope" in res.stdout and "one new frame: rcn_gru_s streaming" in res.stdout
    with open(out / "profile.csv") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        rows = list(reader)
    assert [(r["model"], r["T"]) for r in rows] == [("rcn_gru_s", "2"), ("rcn_gru_s", "4"),
                                                    ("c3d_s", "2"), ("c3d_s", "4")]
    assert all(r["error"] == "" and float(r["latency_median_ms"]) > 0 and float(r["train_median_ms"]) > 0
               and int(r["flops"]) > 0 for r in rows)
    assert {r["model"]: r["new_frame_mode"] for r in rows} == {"rcn_gru_s": "stream", "c3d_s": "window"}
    steps = {r["model"]: int(r["seq_steps"]) for r in rows if r["T"] == "4"}
    assert steps == {"rcn_gru_s": 2 * 4, "c3d_s": 0}  # two recurrent layers, T = 4 steps each; none in a 3-D CNN
    data = json.loads((out / "profile.json").read_text())
    assert set(data["fits"]) == {"rcn_gru_s", "c3d_s"} and len(data["rows"]) == 4
    assert data["meta"]["machine"]["torch_threads"] == 1
    md = (out / "profile.md").read_text()
    assert md.count("| rcn_gru_s |") == 2
    assert "Batch 1. Switches: forward+backward timed." in md  # which run produced the table
    assert (out / "latency_vs_length.png").read_bytes()[:4] == b"\x89PNG"


def test_scaling_rows_give_the_speed_up_from_the_fewest_threads() -> None:
    from vidrcnn.profiling.report import scaling_markdown, scaling_rows

    rows = [{"model": m, "T": 8, "batch": 1, "threads": n, "latency_median_ms": ms, "error": ""}
            for m, per in (("c3d_s", {1: 10.0, 2: 5.5}), ("rcn_gru_s", {1: 8.0, 2: 6.4})) for n, ms in per.items()]
    rows.append({"model": "frame_avg_s", "T": 8, "batch": 1, "threads": 1, "latency_median_ms": 3.0, "error": ""})
    scaling = scaling_rows(rows)
    assert [(s["model"], round(s["speedup"][2], 3)) for s in scaling] == [("c3d_s", 1.818), ("rcn_gru_s", 1.25)]
    assert "| c3d_s | 8 | 1 | 10 | 5.5 | 1.82x |" in scaling_markdown(scaling)  # one thread count only: no row


def test_plot_titles_say_what_the_numbers_show() -> None:
    from vidrcnn.profiling.report import _extreme_title

    rows = [{"model": m, "T": t, "ms_per_gflop": v, "error": ""}
            for m, t, v in (("c3d_s", 16, 48.0), ("rcn_gru_s", 16, 35.0), ("c3d_s", 8, 1.0), ("rcn_gru_s", 8, 90.0))]
    assert _extreme_title(rows, "ms_per_gflop", "ms per GFLOP", ".3g") == (
        "ms per GFLOP at T=16: highest c3d_s (48), lowest rcn_gru_s (35)")  # the longest clip decides


def test_work_per_step_titles_follow_the_numbers(tmp_path: Path) -> None:
    from vidrcnn.profiling.report import plot_work_per_step, scaling_rows, work_per_step

    def rows(speedups: dict[str, float]) -> list[dict]:
        # c3d_s: no time loop (one step of 8 GFLOPs); the RCNs: 32 steps of 10 and 50 MFLOPs.
        flops = {"c3d_s": (8e9, 0), "rcn_gru_s": (32 * 5e7, 32), "rcn_mingru_s": (32 * 1e7, 32)}
        return [{"model": m, "T": 16, "batch": 1, "threads": n, "flops": flops[m][0], "seq_steps": flops[m][1],
                 "latency_median_ms": 10.0 / (speedups[m] if n == 2 else 1.0), "error": ""}
                for m in flops for n in (1, 2)]

    assert work_per_step({"flops": 8e9, "seq_steps": 0}) == 8e9  # no time loop: the clip is one step
    rising = rows({"c3d_s": 1.9, "rcn_gru_s": 1.5, "rcn_mingru_s": 1.2})
    assert "speed-up rises with work per step" in plot_work_per_step(rising, scaling_rows(rising), tmp_path / "a.png")
    falling = rows({"c3d_s": 1.2, "rcn_gru_s": 1.5, "rcn_mingru_s": 1.9})
    text = plot_work_per_step(falling, scaling_rows(falling), tmp_path / "b.png")
    assert "speed-up falls with work per step" in text and (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_tool_measures_every_thread_count_and_batch_in_one_run(tmp_path: Path) -> None:
    out = tmp_path / "prof"
    cmd = [sys.executable, str(TOOL), "--models", "rcn_gru_s,c3d_s", "--lengths", "2,3", "--size", "16", "--iters",
           "1", "--warmup", "0", "--threads", "1,2", "--batch", "1,2", "--out", str(out)]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    with open(out / "profile.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["model"], r["threads"], r["batch"]) for r in rows) == sorted(
        (m, n, b) for m in ("rcn_gru_s", "c3d_s") for n in "12" for b in "12" for _ in (2, 3))
    data = json.loads((out / "profile.json").read_text())
    assert data["meta"]["machine"]["torch_threads"] == [1, 2]
    assert len(data["scaling"]) == 8 and {(s["model"], s["batch"]) for s in data["scaling"]} == {
        (m, b) for m in ("rcn_gru_s", "c3d_s") for b in (1, 2)}
    assert "rcn_gru_s (batch 2, 1 threads)" in data["fits"]
    md = (out / "profile.md").read_text()
    assert "## Strong scaling" in md and "speed-up 1->2" in md and "Batches 1, 2." in md
    assert "Work per dependent step (work_per_step.png): ms per dependent step ~" in md
    assert (out / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "work_per_step.png").read_bytes()[:4] == b"\x89PNG"


def _run_tool(out: Path, *switches: str, models: str = "rcn_gru_s,c3d_s") -> list[dict]:
    cmd = [sys.executable, str(TOOL), "--models", models, "--lengths", "2", "--size", "16", "--iters", "1",
           "--warmup", "0", "--threads", "1", "--out", str(out), *switches]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, cwd=out.parent)
    assert res.returncode == 0, res.stderr
    with open(out / "profile.csv") as f:
        return list(csv.DictReader(f))


def test_train_mode_reports_backward_memory_with_and_without_checkpointing(tmp_path: Path) -> None:
    rows = _run_tool(tmp_path / "prof", "--train", "--checkpoint-every", "1")
    assert [r["model"] for r in rows] == ["rcn_gru_s", "c3d_s", "rcn_gru_s+checkpoint_every=1"]  # no 3-D CNN twin
    for r in rows:
        assert float(r["train_median_ms"]) > 0 and float(r["train_peak_mem_mb"]) > 0, r


def test_bf16_and_channels_last_switches_run_and_are_recorded(tmp_path: Path) -> None:
    rows = _run_tool(tmp_path / "prof", "--amp", "--channels-last")
    assert [(r["model"], r["dtype"], r["channels_last"], r["error"]) for r in rows] == [
        ("rcn_gru_s", "bf16", "True", ""), ("c3d_s", "bf16", "True", "")]
    assert all(float(r["latency_median_ms"]) > 0 for r in rows)
    assert "Switches: bf16 autocast, channels-last." in (tmp_path / "prof" / "profile.md").read_text()


def test_bf16_training_on_the_cpu_is_refused_before_it_can_corrupt_the_heap(tmp_path: Path) -> None:
    # The repro of the issue: PyTorch 2.14.1 aborts in this backward on the CPU (free(): invalid next size).
    cmd = [sys.executable, str(TOOL), "--models", "rcn_gru_m", "--lengths", "2", "--batch", "4", "--size", "112",
           "--train", "--amp", "--out", str(tmp_path / "prof")]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.startswith("error: --amp --train: bf16 autocast in training is refused"), \
        res.stderr[-2000:]
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "prof").exists()
    with pytest.raises(ConfigError, match="corrupts the heap"):
        ProfileOptions(train=True, amp=True, device="cpu")
    assert ProfileOptions(train=True, device="cpu").amp is False and ProfileOptions(amp=True, device="cpu").amp


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile's CPU backend (inductor) needs a C++ compiler")
def test_compile_switch_runs_a_compiled_model(tmp_path: Path) -> None:
    rows = _run_tool(tmp_path / "prof", "--compile", models="frame_avg_s")  # about 15 s of compiling on 2 cores
    assert [(r["model"], r["compile"], r["error"]) for r in rows] == [("frame_avg_s", "True", "")]
    assert float(rows[0]["latency_median_ms"]) > 0 and int(rows[0]["flops"]) > 0


@pytest.fixture(scope="module")
def tool_main():
    return load_tool("profile").main


@pytest.mark.parametrize(("argv", "message"), [
    (["--models", "rcn_gru_s,no_such_model"], "no_such_model"),
    (["--lengths", "4,x"], "--lengths"),
    (["--lengths", "0,4"], ">= 1"),
    (["--batch", "0"], "--batch"),
])
def test_tool_rejects_bad_arguments_with_one_error_line(tool_main, capsys, tmp_path: Path, argv, message) -> None:
    assert run_tool(tool_main, [*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing profiled, nothing written


def test_an_unusable_out_folder_fails_before_any_profiling(tool_main, capsys, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "prof"
    assert run_tool(tool_main, ["--models", "c3d_s", "--lengths", "2", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: {out}") and "profiling c3d_s" not in captured.out


def test_files_an_earlier_profile_did_not_write_are_kept(tool_main, capsys, tmp_path: Path) -> None:
    (tmp_path / "profile.md").write_text("my notes\n")
    argv = ["--models", "c3d_s", "--lengths", "2", "--size", "16", "--iters", "1", "--warmup", "0", "--no-stream",
            "--out", str(tmp_path)]
    assert run_tool(tool_main, argv) == 2
    captured = capsys.readouterr()
    assert "profile.md: already exists; pass --overwrite" in captured.err and "profiling" not in captured.out
    assert (tmp_path / "profile.md").read_text() == "my notes\n"
    assert run_tool(tool_main, [*argv, "--overwrite"]) == 0
    assert run_tool(tool_main, argv) == 0  # its own earlier profile is replaced without asking
    assert "c3d_s" in (tmp_path / "profile.md").read_text()


def test_count_kernels_counts_each_dispatch_of_a_call():
    from vidrcnn.profiling.measure import count_kernels

    layer, x = nn.Linear(4, 4), torch.randn(2, 4)
    with torch.no_grad():
        one, kind = count_kernels(lambda: layer(x))
        four, _ = count_kernels(lambda: [layer(x) for _ in range(4)])
    assert kind == "CPU operators" and one >= 1 and four == 4 * one


def test_compile_step_profiles_each_cells_step_compiled(monkeypatch) -> None:
    from vidrcnn.layers import compile_steps
    from vidrcnn.profiling import run

    compiled = []
    monkeypatch.setattr(run, "compile_steps", lambda m: compiled.append(compile_steps(m, backend="aot_eager")))
    opts = ProfileOptions(size=16, warmup=0, iters=1, train=True, compile_step=True)
    rows = run.profile_models(["rcn_gru_s", "c3d_s"], [2], opts)
    assert compiled == [2, 0]  # the two recurrent layers of rcn_gru_s; a 3-D CNN has no cell to compile
    assert all(not r["error"] and r["compile"] == "step" and r["train_median_ms"] > 0 for r in rows)
