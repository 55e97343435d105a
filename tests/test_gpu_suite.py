"""benchmarks/gpu_suite.py runs end to end on the CPU (--quick), so it is known to work before a GPU is lent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_quick_suite_runs_every_configuration_and_reports_it(tmp_path):
    out = tmp_path / "suite"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_suite.py"), "--out", str(out), "--device",
                          "cpu", "--quick"], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((out / "suite.json").read_text())
    names = [c["config"] for c in result["configs"]]
    assert names == ["fp32", "bf16 autocast", "training, AMP + channels-last, batch 8"] and not result["skipped"]
    for c in result["configs"]:
        assert c["rows"] and all(not r["error"] and r["latency_median_ms"] > 0 for r in c["rows"]), c["config"]
    fp32 = result["configs"][0]["rows"]
    assert {r["model"] for r in fp32} == {"rcn_gru_s", "rcn_mingru_s+log", "c3d_s"} and {r["T"] for r in fp32} == {4, 8}
    assert all(r["train_median_ms"] > 0 for r in result["configs"][2]["rows"])
    text = (out / "suite.md").read_text()
    assert text.count("\n## ") == 4 and (out / "fp32.png").is_file()
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
    assert [c["config"] for c in result["configs"]] == ["fp32"] and len(result["skipped"]) == 2
    assert "## Skipped" in (out / "suite.md").read_text()
