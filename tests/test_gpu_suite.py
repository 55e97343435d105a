"""benchmarks/gpu_suite.py runs end to end on the CPU (--quick), so it is known to work before a GPU is lent."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _suite(monkeypatch):
    """benchmarks/gpu_suite.py as a module."""
    spec = importlib.util.spec_from_file_location("gpu_suite", REPO / "benchmarks" / "gpu_suite.py")
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # it imports stream_frame and train_step from beside itself
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    return suite


def test_the_full_suite_compiles_cell_steps_never_whole_models_and_trains_at_the_targets_shape(monkeypatch):
    suite = _suite(monkeypatch)
    configs = {name: (opts, models, lengths) for name, opts, models, lengths in suite.configs("cuda", quick=False)}
    assert not any(opts.compile for opts, _, _ in configs.values())  # a whole model's compile grows with T
    assert configs["compiled cell steps"][0].compile_step
    train = [(opts, models, lengths) for name, (opts, models, lengths) in configs.items() if name.startswith("training")]
    assert [opts.compile_step for opts, _, _ in train] == [False, True]
    for opts, models, lengths in train:  # the GPU issue's training target: T = 16 x batch 4 at 64x64, AMP on CUDA
        assert (opts.batch, opts.size, lengths, opts.amp, models) == (4, 64, [16], True, ("rcn_gru_s", "c3d_s"))


def test_the_quick_suite_runs_every_configuration_and_reports_it(tmp_path):
    out = tmp_path / "suite"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_suite.py"), "--out", str(out), "--device",
                          "cpu", "--quick"], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((out / "suite.json").read_text())
    names = [c["config"] for c in result["configs"]]
    assert names == ["fp32", "bf16 autocast", "training, channels-last, batch 2"] and not result["skipped"]
    assert result["complete"] and "Incomplete" not in (out / "suite.md").read_text()
    for c in result["configs"]:
        assert c["rows"] and all(not r["error"] and r["latency_median_ms"] > 0 for r in c["rows"]), c["config"]
    fp32 = result["configs"][0]["rows"]
    assert {r["model"] for r in fp32} == {"rcn_gru_s", "rcn_mingru_s+log", "c3d_s"} and {r["T"] for r in fp32} == {4, 8}
    assert all(r["train_median_ms"] > 0 for r in result["configs"][2]["rows"])
    text = (out / "suite.md").read_text()
    assert text.count("\n## ") == 8 and (out / "fp32.png").is_file()
    steps = {(r["model"], r["how"]): r for r in result["train_step"]}
    assert set(steps) == {("rcn_gru_s", "eager"), ("c3d_s", "eager")} and steps[("c3d_s", "eager")]["vs_baseline"] == 1
    assert all(r["ms"] > 0 for r in steps.values()) and "## Training step" in text
    assert {(r["model"], r["T"]) for r in result["equal_work"]} == {(m, t) for m in ("rcn_gru_s", "c3d_s") for t in (1, 2, 4)}
    assert "## Latency at equal work" in text and "## The span bound, checked" in text
    span = {(r["model"], r["T"]): r["span_launches"] for r in result["span_check"]}
    assert span.keys() == {(r["model"], r["T"]) for r in result["equal_work"]}
    assert span[("rcn_gru_s", 4)] > span[("rcn_gru_s", 1)] and span[("c3d_s", 4)] == span[("c3d_s", 1)]
    streamed = {(r["model"], r["what"]) for r in result["streamed"]}
    assert {("rcn_gru_s", "one streamed frame (chunk)"), ("rcn_gru_s", "one streamed frame (frame, norms not folded)"),
            ("rcn_gru_s", "one streamed frame (frame)"),
            ("c3d_s", "a 16-frame window per new frame (eager)"), ("rcn_gru_s", "a 8-frame clip (eager)")} <= streamed
    clips = {r["model"]: r["kernels"] for r in result["streamed"] if "kernels" in r}
    assert clips["rcn_gru_s"] > clips["c3d_s"] > 0  # a recurrent clip dispatches per step
    assert all(r["ms"] > 0 for r in result["streamed"]) and "## Streamed frame" in text
    # Every measured fp32 row beside its projection, which says that a CPU is not the hardware it projects.
    proj = result["projection"]
    assert sorted((p["model"], p["T"]) for p in proj) == sorted((r["model"], r["T"]) for r in fp32)
    assert all(p["projected_ms"] > 0 and p["kernels"] > 0 for p in proj)
    assert "## Measured (fp32) against projected" in text and "is not an H100" in text
    assert "0 rows with errors" in run.stdout


def test_a_spent_budget_skips_the_rest_and_says_so(tmp_path):
    out = tmp_path / "suite"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_suite.py"), "--out", str(out), "--device",
                          "cpu", "--quick", "--budget-s", "0"], capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((out / "suite.json").read_text())
    assert [c["config"] for c in result["configs"]] == ["fp32"] and len(result["skipped"]) == 5
    assert "## Skipped" in (out / "suite.md").read_text()


def test_a_suite_stopped_after_its_first_configuration_has_written_that_table(tmp_path, monkeypatch):
    suite = _suite(monkeypatch)
    measured = suite.profile_models
    calls = []

    def killed_after_one(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt  # the run is stopped while the second configuration runs
        return measured(*args, **kwargs)

    monkeypatch.setattr(suite, "profile_models", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        suite.run_suite(tmp_path, device="cpu", quick=True, budget_s=600)
    result = json.loads((tmp_path / "suite.json").read_text())
    assert [c["config"] for c in result["configs"]] == ["fp32"] and not result["complete"]
    text = (tmp_path / "suite.md").read_text()
    assert "**Incomplete**: the suite stopped after 1 configuration(s)" in text and "## fp32" in text
