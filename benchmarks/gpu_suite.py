"""The GPU suite: every latency figure the project wants from a GPU, in one command, in under 8 minutes.

Figures: docs/guide/performance.md, "What was measured on a GPU" (what it measures, and what a GPU has run).

    python benchmarks/gpu_suite.py --out DIR                      # on a lent GPU (device cuda)
    python benchmarks/gpu_suite.py --out DIR --device cpu --quick # the same code path in under a minute (tested)

Runs ``vidrcnn.profiling.profile_models`` (what ``tools/profile.py`` runs) for ``rcn_gru_s``, ``rcn_lstm_s``,
``rcn_mingru_s`` with its sequential scan and with the log scan, ``cnn_lstm_s``, ``c3d_s`` and ``r2plus1d_18`` at
T = 8, 16, 32, 64, 128, batch 1, in fp32, bf16 autocast, and with each recurrent cell's step compiled
(``vidrcnn.layers.compile_steps``: the unrolled loop is never compiled, so compile time does not grow with T); then
a few AMP training steps with channels-last for ``rcn_gru_s`` and ``c3d_s`` at T = 16, batch 4, 64x64, eager and
with compiled steps (bf16 autocast only on CUDA: on the CPU its backward corrupts the heap); then one
streamed frame of ``rcn_gru_m``, ``rcn_lstm_m`` and ``rcn_mingru_m`` eager and replayed as a CUDA graph, the most
streams one batched step serves at 25 fps, and ``c3d_m`` and ``r2plus1d_18`` re-running a window per frame
(``benchmarks/stream_frame.py``); then one training step of ``rcn_gru_s`` and ``c3d_s`` as tools/train.py runs
it, eager and replayed as a CUDA graph (``benchmarks/train_step.py``); then latency at equal work (64 frames per call, T from 1 to 64, forward and
forward + backward: ``vidrcnn.profiling.equal_work``, as ``tools/profile.py --equal-work 64`` runs it), each
forward row checked against the work/span bound (its launches and span counted; ``span_check``). Every row
carries its peak memory. Writes ``DIR/suite.md`` (a table per configuration, the configurations skipped and why),
``DIR/suite.json`` and a latency-against-T plot per configuration, rewritten after every configuration, so that a
suite stopped early (a killed run, a device lent for less time) still leaves the tables it measured. A
configuration that would start after ``--budget-s`` is skipped and listed as skipped, so the suite ends in time.
The report ends with the measured fp32 latencies beside the projection of ``vidrcnn.profiling.latency_model`` (an
H100's published throughput and a cited launch cost, the operators of each forward pass counted here): on the GPU
that projection was made for, the ratio says how far the latency model is off; on any other device it only
compares unlike hardware, and the report says so.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import stream_frame  # a benchmark beside this one (python benchmarks/gpu_suite.py puts benchmarks/ on sys.path)
import torch
import train_step

from vidrcnn.layers import compile_steps
from vidrcnn.models import get_model
from vidrcnn.profiling import report
from vidrcnn.profiling.equal_work import equal_work
from vidrcnn.profiling.equal_work import markdown as equal_work_markdown
from vidrcnn.profiling.latency_model import GPU_TFLOPS, LAUNCH_US, UTILISATION, project
from vidrcnn.profiling.run import ProfileOptions, profile_models

# name -> (registered model, builder options)
MODELS = {"rcn_gru_s": ("rcn_gru_s", {}), "rcn_lstm_s": ("rcn_lstm_s", {}),
          "rcn_mingru_s": ("rcn_mingru_s", {"scan": "sequential"}), "rcn_mingru_s+log": ("rcn_mingru_s", {"scan": "log"}),
          "cnn_lstm_s": ("cnn_lstm_s", {}), "c3d_s": ("c3d_s", {}), "r2plus1d_18": ("r2plus1d_18", {})}
QUICK_MODELS = ("rcn_gru_s", "rcn_mingru_s+log", "c3d_s")
TRAIN_MODELS = ("rcn_gru_s", "c3d_s")


def configs(device: str, quick: bool) -> list[tuple[str, ProfileOptions, tuple[str, ...], list[int]]]:
    """(name, options, models, lengths) of every configuration, in the order they run."""
    lengths = [4, 8] if quick else [8, 16, 32, 64, 128]
    base = ProfileOptions(device=device, warmup=1 if quick else 3, iters=2 if quick else 20)
    models = QUICK_MODELS if quick else tuple(MODELS)
    out = [("fp32", base, models, lengths), ("bf16 autocast", replace(base, amp=True), models, lengths)]
    # Each recurrent cell's step compiled, not the whole model: the unrolled loop is never compiled, so the compile
    # time is one per layer and shape whatever T (compiling whole models took over 110 s for rcn_gru_s on the H200).
    # (Not in --quick: inductor's C++ compile on the CPU costs more than the quick suite; tests/test_layers.py covers
    # the compiled step.)
    if not quick:
        out.append(("compiled cell steps", replace(base, compile_step=True), models, lengths))
    # bf16 autocast in training only on CUDA: on the CPU its backward corrupts the heap (profiling.run.CPU_AMP_TRAIN)
    amp = device == "cuda"
    # the GPU issue's training target: T = 16 x batch 4 at 64x64, rcn_gru_s against c3d_s
    train = replace(base, train=True, amp=amp, channels_last=True, batch=2 if quick else 4, size=32 if quick else 64,
                    stream=False)
    label = f"training, {'AMP + ' if amp else ''}channels-last, batch {train.batch}"
    out.append((label, train, TRAIN_MODELS, [4] if quick else [16]))
    if not quick:
        out.append((f"{label}, compiled cell steps", replace(train, compile_step=True), TRAIN_MODELS, [16]))
    return out


def _build(name: str):
    model, kwargs = MODELS[name]
    return get_model(model, num_classes=10, **kwargs)


def run_suite(out: Path, *, device: str, quick: bool, budget_s: float) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    done, skipped = [], []
    result = {"machine": report.machine_info(device), "quick": quick, "seconds": 0.0, "configs": done,
              "skipped": skipped, "complete": False}
    for name, opts, models, lengths in configs(device, quick):
        if done and time.perf_counter() - start > budget_s:  # the first always runs
            skipped.append(f"{name}: not started, the budget of {budget_s:.0f} s was spent")
            continue
        t0 = time.perf_counter()
        rows = profile_models(models, lengths, opts, build=_build,
                              progress=lambda m, n=name: print(f"[{time.perf_counter() - start:5.0f} s] {n}: {m}",
                                                               flush=True))
        done.append({"config": name, "options": asdict(opts), "seconds": time.perf_counter() - t0, "rows": rows})
        if any(not r.get("error") for r in rows):
            report.plot(rows, out / f"{name.split(',')[0].replace(' ', '_').replace('+', 'plus')}.png")
        _write(out, result, start)  # what is measured so far, before the next configuration starts
    if time.perf_counter() - start > budget_s:
        skipped.append(f"streamed frame: not started, the budget of {budget_s:.0f} s was spent")
    else:
        print(f"[{time.perf_counter() - start:5.0f} s] streamed frame", flush=True)
        result["streamed"] = (stream_frame.measure(device, ["rcn_gru_s"], ["c3d_s"], size=32, warmup=1, iters=2,
                                                   max_streams=4, clip=8, compiled=False) if quick else
                              stream_frame.measure(device, stream_frame.STREAM_MODELS, stream_frame.WINDOW_MODELS))
        _write(out, result, start)
    if time.perf_counter() - start > budget_s:
        skipped.append(f"training step: not started, the budget of {budget_s:.0f} s was spent")
    else:
        print(f"[{time.perf_counter() - start:5.0f} s] training step", flush=True)
        result["train_step"] = (train_step.measure(device, batch=2, frames=4, size=32, warmup=1, iters=2,
                                                   compiled=False) if quick else train_step.measure(device))
        _write(out, result, start)
    if time.perf_counter() - start > budget_s:
        skipped.append(f"equal work: not started, the budget of {budget_s:.0f} s was spent")
    else:
        print(f"[{time.perf_counter() - start:5.0f} s] equal work", flush=True)
        result["equal_work"] = equal_work_rows(device, quick)
        result["span_check"] = span_check(result["equal_work"], device)
    result.update(complete=True, projection=projection(done[0]["rows"]))
    _write(out, result, start)
    return result


EQUAL_WORK_MODELS = ("rcn_gru_m", "rcn_lstm_m", "rcn_mingru_m", "cnn_lstm_m", "c3d_m", "r2plus1d_18", "frame_avg_m")


def equal_work_rows(device: str, quick: bool) -> list[dict]:
    """Latency at equal work (64 frames per call, 112x112; quick: 4 frames, 16x16): forward, and forward + backward;
    the first model also with its cells' steps compiled."""
    models, frames, size = (("rcn_gru_s", "c3d_s"), 4, 16) if quick else (EQUAL_WORK_MODELS, 64, 112)
    rows = []
    for name in models if quick else (*models, models[0] + " (compiled cell steps)"):
        model = get_model(name.split()[0], num_classes=10)
        if name.endswith("(compiled cell steps)"):
            compile_steps(model)
        rows += equal_work(name, model, frames=frames, size=size, device=device, warmup=1 if quick else 3,
                           iters=2 if quick else 10, train=True)
    return rows


def span_check(rows: list[dict], device: str) -> list[dict]:
    """Each measured equal-work forward row beside its counted launches and span launches and the bounds of
    ``vidrcnn.profiling.latency_model`` (its GPU constants): eager, every launch in turn, and the span floor no schedule
    goes under. Measured below the floor means the constants are wrong for this device."""
    out = []
    for r in rows:
        if r.get("error") or " " in r["model"]:  # the compiled row launches what inductor generated: not counted
            continue
        p = project(r["model"], {}, r["T"], size=r["size"], batch=r["batch"], device=device)
        out.append({"model": r["model"], "T": r["T"], "batch": r["batch"], "measured_ms": r["forward_ms"],
                    "launches": p["kernels"], "span_launches": p["span_launches"], "eager_bound_ms": p["ms"],
                    "span_floor_ms": p["span_ms"], "span_bound": p["span_bound"]})
    return out


def span_check_markdown(rows: list[dict]) -> str:
    lines = [("| model | T | B | measured ms | launches | span launches | eager bound ms | span floor ms | "
              "measured / span floor | span-bound |"), "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['T']} | {r['batch']} | {r['measured_ms']:.3g} | {r['launches']} | "
              f"{r['span_launches']} | {r['eager_bound_ms']:.3g} | {r['span_floor_ms']:.3g} | "
              f"{r['measured_ms'] / r['span_floor_ms']:.1f} | {'yes' if r['span_bound'] else 'no'} |" for r in rows]
    return "\n".join(lines)


def _write(out: Path, result: dict, start: float) -> None:
    result["seconds"] = time.perf_counter() - start
    (out / "suite.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "suite.md").write_text(markdown(result))


def projection(rows: list[dict]) -> list[dict]:
    """Each measured fp32 row beside the latency model's GPU projection for it (max of work at the H100's
    throughput x utilisation and launched operators x launch cost; ``vidrcnn.profiling.latency_model``)."""
    out = []
    for r in rows:
        if r.get("error") or r["model"] not in MODELS:
            continue
        name, kwargs = MODELS[r["model"]]
        p = project(name, kwargs, r["T"], size=r["height"])
        out.append({"model": r["model"], "T": r["T"], "measured_ms": r["latency_median_ms"], "kernels": p["kernels"],
                    "projected_ms": p["ms"], "bound": p["bound"]})
    return out


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"# GPU suite{' (quick)' if result['quick'] else ''}", "",
             (f"{m.get('gpu', m['cpu'])}, torch {m['torch']}, {m['date']}; {result['seconds']:.0f} s in all "
             "(`python benchmarks/gpu_suite.py`)."), ""]
    if not result.get("complete", True):
        lines += [(f"**Incomplete**: the suite stopped after {len(result['configs'])} configuration(s); the tables "
                   "below are what it measured."), ""]
    for c in result["configs"]:
        first = [r["first_call_s"] for r in c["rows"] if r.get("first_call_s") is not None]
        slowest = f"; the slowest first call (with compiled steps: the compile) {max(first):.1f} s" if first else ""
        lines += [f"## {c['config']} ({c['seconds']:.0f} s{slowest})", "", report.markdown_table(c["rows"]), ""]
    if result.get("streamed"):
        lines += ["## Streamed frame (`benchmarks/stream_frame.py`)", "",
                  ("One new frame with carried state, per step mode, against a 3-D CNN re-running its window; and the "
                   "most streams one batched step serves at 25 fps."), "", stream_frame.markdown(result["streamed"]), ""]
    if result.get("train_step"):
        lines += ["## Training step (`benchmarks/train_step.py`)", "",
                  ("One step as tools/train.py runs it (forward, loss, backward, clipping, AdamW; bf16 on CUDA), eager "
                   "and, on CUDA, replayed as one graph (`train.cuda_graph`); the last column is the GPU issue's "
                   "training ratio."), "", train_step.markdown(result["train_step"]), ""]
    if result.get("equal_work"):
        lines += ["## Latency at equal work (`vidrcnn.profiling.equal_work`)", "",
                  ("Frames per call held at B x T while T grows: the slowdown at the longest T against the shortest; "
                   "a recurrent model pays per dependent step, a 3-D CNN's time axis is parallel work."), "",
                  equal_work_markdown(result["equal_work"]), ""]
    if result.get("span_check"):
        lines += ["## The span bound, checked (`vidrcnn.profiling.latency_model`, `vidrcnn.profiling.work_span`)", "",
                  (f"Each forward row above beside its launches, counted, and the bounds at {GPU_TFLOPS:g} TFLOPS x "
                   f"{UTILISATION:g} and {LAUNCH_US:g} us per launch: eager (every launch in turn) and the span floor "
                   "(the launches on the longest chain). Span-bound: the span's launches outweigh the work."), "",
                  span_check_markdown(result["span_check"]), ""]
    if result.get("projection"):
        gpu = m.get("gpu", "")
        same = "H100" in gpu
        lines += ["## Measured (fp32) against projected", "",
                  (f"Projected: {GPU_TFLOPS:g} TFLOPS x {UTILISATION:g} utilisation, {LAUNCH_US:g} us per launched "
                   "operator, eager (vidrcnn.profiling.latency_model; projected, not measured). "
                   + ("This device is the kind the projection was made for: the ratio is the latency model's error."
                      if same else f"This device ({gpu or m['cpu']}) is not an H100: the ratio compares unlike "
                      "hardware and is not the model's error.")), "",
                  "| model | T | measured ms | projected ms | projected bound | operators | measured / projected |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {p['model']} | {p['T']} | {p['measured_ms']:.3g} | {p['projected_ms']:.3g} | {p['bound']} | "
                  f"{p['kernels']} | {p['measured_ms'] / p['projected_ms']:.2f} |" for p in result["projection"]]
        lines += [""]
    if result["skipped"]:
        lines += ["## Skipped", "", *(f"- {s}" for s in result["skipped"]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="folder for suite.md, suite.json and the plots")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="two lengths, three models, two calls each (the CPU test)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="start no configuration after this [420]")
    args = ap.parse_args(argv)
    result = run_suite(args.out, device=args.device, quick=args.quick, budget_s=args.budget_s)
    errors = [f"{c['config']}: {r['model']} T={r['T']}: {r['error']}" for c in result["configs"] for r in c["rows"]
              if r.get("error")]
    print(f"wrote {args.out / 'suite.md'} in {result['seconds']:.0f} s; {len(errors)} rows with errors"
          + "".join(f"\n  {e}" for e in errors[:10]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
