"""benchmarks/latency_model.py: the fit recovers a known cost model, and the projection's kernel count grows with T
for a time loop and not for a 3-D CNN."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "latency_model", Path(__file__).resolve().parents[1] / "benchmarks" / "latency_model.py")
latency_model = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(latency_model)


def test_the_fit_recovers_work_and_step_costs_and_drops_a_negative_term():
    rows = [{"gflops": g, "seq_steps": s, "latency_median_ms": 0.5 + 2.0 * g + 0.1 * s}
            for g, s in [(1, 16), (4, 64), (2, 16), (8, 64), (3, 32)]]
    m = latency_model.fit(rows)
    assert m == pytest.approx({"c0_ms": 0.5, "ms_per_gflop": 2.0, "c_step_ms": 0.1}, abs=1e-9)
    flat = [{"gflops": g, "seq_steps": 1, "latency_median_ms": 3.0 * g - 0.2} for g in (1, 2, 3)]
    assert latency_model.fit(flat)["c0_ms"] >= 0  # a negative intercept is dropped, not reported


def test_a_time_loop_launches_per_frame_and_a_3d_cnn_does_not():
    gru8, _ = latency_model.kernels_and_flops("rcn_gru_s", {}, 8, size=32)
    gru16, _ = latency_model.kernels_and_flops("rcn_gru_s", {}, 16, size=32)
    c3d8, f8 = latency_model.kernels_and_flops("c3d_s", {}, 8, size=32)
    c3d16, f16 = latency_model.kernels_and_flops("c3d_s", {}, 16, size=32)
    assert gru16 - gru8 > 8 * 5  # several operators per frame and layer
    assert c3d16 == c3d8 and f16 == pytest.approx(2 * f8, rel=0.05)  # same kernels, twice the work
