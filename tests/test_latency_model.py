"""vidrcnn.profiling.latency_model: the fit recovers a known cost model, and the projection's kernel count grows with T
for a time loop and not for a 3-D CNN."""

from __future__ import annotations

import pytest

from vidrcnn.profiling import latency_model


def test_the_fit_recovers_work_and_step_costs_and_drops_a_negative_term():
    rows = [{"gflops": g, "seq_steps": s, "latency_median_ms": 0.5 + 2.0 * g + 0.1 * s}
            for g, s in [(1, 16), (4, 64), (2, 16), (8, 64), (3, 32)]]
    m = latency_model.fit(rows)
    assert m == pytest.approx({"c0_ms": 0.5, "ms_per_gflop": 2.0, "c_step_ms": 0.1}, abs=1e-9)
    flat = [{"gflops": g, "seq_steps": 1, "latency_median_ms": 3.0 * g - 0.2} for g in (1, 2, 3)]
    assert latency_model.fit(flat)["c0_ms"] >= 0  # a negative intercept is dropped, not reported


def test_a_time_loop_launches_per_frame_and_a_3d_cnn_does_not():
    gru8, gru16 = (latency_model.counts("rcn_gru_s", {}, t, size=32) for t in (8, 16))
    c3d8, c3d16 = (latency_model.counts("c3d_s", {}, t, size=32) for t in (8, 16))
    assert gru16.launches - gru8.launches > 8 * 5  # several operators per frame and layer
    assert gru16.span_launches - gru8.span_launches > 8 * 2  # and most of them one after another
    assert c3d16.launches == c3d8.launches and c3d16.span_launches == c3d8.span_launches
    assert c3d16.work_flops == pytest.approx(2 * c3d8.work_flops, rel=0.05)  # same kernels, twice the work


def test_the_projection_puts_the_span_floor_under_the_eager_latency_and_finds_where_it_binds():
    p = latency_model.project("rcn_gru_s", {}, 16, size=32)
    assert p["span_ms"] <= p["ms"] and p["span_launches"] < p["kernels"]
    # with free arithmetic every model is span-bound from the first T; with free launches never
    rows = []
    for m in ("rcn_gru_s", "c3d_s"):
        for t in (1, 4, 16):
            ws = latency_model.counts(m, {}, t, size=16, batch=16 // t)
            rows.append({"model": m, "T": t, "batch": 16 // t, "size": 16, "work_gflop": ws.work_flops / 1e9,
                         "launches": ws.launches, "span_launches": ws.span_launches})
    assert latency_model.equal_work_projection(rows, tflops=1e12).count("| T = 1 |") == 2
    assert latency_model.equal_work_projection(rows, launch_us=0.0).count("| never here |") == 2
