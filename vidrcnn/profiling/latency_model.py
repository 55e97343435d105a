"""A latency model fitted to the CPU profile, and what it projects for a GPU (projected, not measured).

    python tools/profile.py --models rcn_gru_s,rcn_mingru_s,c3d_s --lengths 8,16,32,64,128 --batch 1,4,8 \\
        --iters 10 --no-stream --out outputs/profile_model
    python -m vidrcnn.profiling.latency_model outputs/profile_model/profile.json [--threads N]
    python -m vidrcnn.profiling.latency_model --equal-work outputs/equal_work_{32,64,112}/equal_work.json \\
        [--held-size 64]

**The work/span bound (CPU, measured; issue 28).** With ``--equal-work``: every forward row of the equal-work sweeps
(the same 64 frames per call, T from 1 to 64) gets its work (GFLOPs, launches) and span (launches on the longest
dependent chain) counted by ``vidrcnn.profiling.work_span``, and three latency forms are fitted, one machine-wide
pair of constants for every model: the bound ``max(work / P, span launches x c)``, and the sums ``work / P + span
launches x c`` and ``work / P + launches x c``. The rows of one frame size are held back and predicted.

**Fit (CPU, measured).** Per model, ``latency = c0 + GFLOPs / throughput + steps x c_step`` by least squares on the
rows of one thread count with T <= 64 and batch 1 or 8 (``steps``: dependent time steps on the critical path, as the
profiler counts them); a negative coefficient is dropped and the rest refitted. The rows held back (T = 128, and
batch 4 at every T) measure how well it predicts what it was not fitted on.

**Projection (GPU, not measured).** An eager forward pass launches one kernel per operator; a kernel that does
little work costs about its launch. Projected latency = max(FLOPs / (peak x utilisation), kernels x launch cost),
with the kernels of the forward pass counted here (``vidrcnn.profiling.work_span``: every ATen operator that computes,
views and allocations excluded), and beside it the floor no schedule goes under, the same with the span's launches
in place of all launches (what CUDA graphs and streams side by side could at best reach). Defaults:
H100 SXM dense BF16 peak 989.4 TFLOPS (NVIDIA's figure, as tabulated at glennklockwood.com/garden/processors/h100),
utilisation 0.3 (an assumption: small convolutions reach far less), and 1.2 microseconds per launched operator
(an elementwise add measured at 1.1-1.3 us end to end on a CUDA GPU in pytorch/pytorch#161104). The T at which
the launches overtake the work is where the sequential bottleneck would dominate. With ``--equal-work`` the
projection is made for every model and T of the sweep (``B = N / T`` clips), at the sweep's largest frame size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vidrcnn.models import get_model
from vidrcnn.profiling.work_span import WorkSpan, work_span

GPU_TFLOPS, UTILISATION, LAUNCH_US = 989.4, 0.3, 1.2
PROJECTED = {"rcn_gru_s": ("rcn_gru_s", {}), "rcn_mingru_s (sequential)": ("rcn_mingru_s", {"scan": "sequential"}),
             "rcn_mingru_s (log scan)": ("rcn_mingru_s", {"scan": "log"}), "c3d_s": ("c3d_s", {})}


def fit(rows: list[dict]) -> dict[str, float]:
    """Non-negative least squares over (1, GFLOPs, steps), by dropping negative terms and refitting."""
    names = ["c0_ms", "ms_per_gflop", "c_step_ms"]
    cols = {"c0_ms": [1.0] * len(rows), "ms_per_gflop": [r["gflops"] for r in rows],
            "c_step_ms": [float(r["seq_steps"]) for r in rows]}
    y = np.array([r["latency_median_ms"] for r in rows])
    while True:
        x = np.array([cols[n] for n in names]).T
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        if (coef >= 0).all() or len(names) == 1:
            return {**dict.fromkeys(cols, 0.0), **dict(zip(names, coef.tolist()))}
        names.pop(int(np.argmin(coef)))


def predict(model: dict[str, float], row: dict) -> float:
    return model["c0_ms"] + model["ms_per_gflop"] * row["gflops"] + model["c_step_ms"] * row["seq_steps"]


def counts(name: str, kwargs: dict, t: int, *, size: int = 64, batch: int = 1, device: str = "cpu") -> WorkSpan:
    """The work and span of one eager forward pass of ``batch`` clips of ``t`` frames
    (``vidrcnn.profiling.work_span``: FLOPs, operators that launch a kernel, and those on the longest chain; counted
    on ``device``, where it runs faster, to the same counts)."""
    torch.manual_seed(0)
    model = get_model(name, num_classes=10, **kwargs).to(device).eval()
    return work_span(model, torch.randn(batch, 3, t, size, size, device=device))


def project(name: str, kwargs: dict, t: int, *, size: int = 64, batch: int = 1, tflops: float = GPU_TFLOPS,
            utilisation: float = UTILISATION, launch_us: float = LAUNCH_US, device: str = "cpu") -> dict:
    """The projected latency of an eager forward pass, ``{"ms", "bound", "kernels", "span_launches", "span_ms"}``:
    ``ms`` = max(work at peak x utilisation, launches x launch cost), eager launching every kernel in turn, and
    ``bound`` says which term is larger (work or launch); ``span_ms`` = max(the same work term, span launches x
    launch cost), the floor that no schedule (CUDA graphs, streams side by side) can go under."""
    ws = counts(name, kwargs, t, size=size, batch=batch, device=device)
    return bounds(ws.work_flops / 1e9, ws.launches, ws.span_launches, tflops=tflops, utilisation=utilisation,
                  launch_us=launch_us)


def bounds(work_gflop: float, launches: int, span_launches: int, *, tflops: float = GPU_TFLOPS,
           utilisation: float = UTILISATION, launch_us: float = LAUNCH_US) -> dict:
    """:func:`project`'s figures from counted work and launches."""
    work_ms = work_gflop / (tflops * utilisation)
    launch_ms, span_ms = launches * launch_us / 1e3, span_launches * launch_us / 1e3
    return {"ms": max(work_ms, launch_ms), "bound": "launch" if launch_ms > work_ms else "work",
            "kernels": launches, "span_launches": span_launches, "span_ms": max(work_ms, span_ms),
            "span_bound": span_ms > work_ms}


# -- the work/span bound, fitted on equal-work sweeps (tools/profile.py --equal-work N) -------------------------------
def equal_work_rows(paths: list[Path]) -> list[dict]:
    """The forward rows of equal-work sweeps, each with the work and span of its input counted
    (``vidrcnn.profiling.work_span``): ``work_gflop``, ``launches``, ``span_launches``."""
    rows, models = [], {}
    for path in paths:
        for r in json.loads(path.read_text())["rows"]:
            if r.get("error"):
                continue
            if r["model"] not in models:
                torch.manual_seed(0)
                models[r["model"]] = get_model(r["model"], num_classes=10)
            ws = work_span(models[r["model"]], torch.randn(r["batch"], 3, r["T"], r["size"], r["size"]))
            rows.append({**r, "work_gflop": ws.work_flops / 1e9, "launches": ws.launches,
                         "span_launches": ws.span_launches})
    return rows


# latency forms: name -> (the columns of the linear ones, or None for the bound itself)
FORMS = {"max(work / P, span launches x c)": None,
         "work / P + span launches x c": ("work_gflop", "span_launches"),
         "work / P + launches x c": ("work_gflop", "launches")}


def fit_form(form: str, rows: list[dict]) -> tuple[float, float]:
    """(ms per GFLOP, ms per launch) of ``form`` minimising the squared relative error over ``rows``."""
    y = np.array([r["forward_ms"] for r in rows])
    columns = FORMS[form]
    if columns is not None:
        x = np.array([[r[c] for c in columns] for r in rows]) / y[:, None]
        coef, *_ = np.linalg.lstsq(x, np.ones(len(rows)), rcond=None)
        return float(max(coef[0], 0.0)), float(max(coef[1], 0.0))
    # the bound: a grid around each term's own fit (every row bound by work alone, or by span alone)
    best, err = (0.0, 0.0), float("inf")
    work, span = np.array([r["work_gflop"] for r in rows]), np.array([r["span_launches"] for r in rows])
    for p in np.median(y / work) * np.logspace(-1.5, 0.5, 81):
        for c in np.median(y / span) * np.logspace(-1.5, 0.5, 81):
            e = np.mean((np.maximum(work * p, span * c) / y - 1) ** 2)
            if e < err:
                best, err = (float(p), float(c)), e
    return best


def predict_form(form: str, coef: tuple[float, float], row: dict) -> float:
    if FORMS[form] is None:
        return max(row["work_gflop"] * coef[0], row["span_launches"] * coef[1])
    a, b = FORMS[form]
    return row[a] * coef[0] + row[b] * coef[1]


def bound_report(rows: list[dict], held_size: int) -> str:
    """Each form fitted on the rows of the other sizes, and its error there and on the held-back size."""
    fit_rows = [r for r in rows if r["size"] != held_size]
    held = [r for r in rows if r["size"] == held_size]
    lines = [(f"| latency form | ms per GFLOP | ms per launch | fit error (mean, {len(fit_rows)} rows) | "
              f"held back ({held_size}x{held_size}, {len(held)} rows): mean | max |"), "|---|---|---|---|---|---|"]
    for form in FORMS:
        coef = fit_form(form, fit_rows)

        def err(rs, form=form, coef=coef):
            return [abs(predict_form(form, coef, r) / r["forward_ms"] - 1) for r in rs]
        e_fit, e_held = err(fit_rows), err(held)
        lines.append(f"| {form} | {coef[0]:.2f} | {coef[1]:.4f} | {100 * np.mean(e_fit):.0f}% | "
                     f"{100 * np.mean(e_held):.0f}% | {100 * max(e_held):.0f}% |")
    return "\n".join(lines)


def equal_work_projection(rows: list[dict], *, tflops: float = GPU_TFLOPS, utilisation: float = UTILISATION,
                          launch_us: float = LAUNCH_US) -> str:
    """The sweep's models and clip lengths (``B = N / T`` clips of ``T`` frames) at its largest frame size, projected
    onto the GPU (projected, not measured) from the counts :func:`equal_work_rows` put in ``rows``: per T the eager
    latency and the span floor, and the shortest T from which the span's launches outweigh the work, where the model
    is span-bound."""
    size = max(r["size"] for r in rows)
    lengths = sorted({r["T"] for r in rows if r["size"] == size})
    lines = ["| model | " + " | ".join(f"T={t}" for t in lengths) + " | span-bound from |",
             "|---|" + "---|" * (len(lengths) + 1)]
    for name in dict.fromkeys(r["model"] for r in rows if r["size"] == size):
        counted = {r["T"]: r for r in rows if r["model"] == name and r["size"] == size}
        cells, first = [], None
        for t in lengths:
            if t not in counted:
                cells.append("")
                continue
            r = counted[t]
            p = bounds(r["work_gflop"], r["launches"], r["span_launches"], tflops=tflops, utilisation=utilisation,
                       launch_us=launch_us)
            cells.append(f"{p['ms']:.2f} / {p['span_ms']:.2f}")
            first = t if first is None and p["span_bound"] else first
        reached = f"T = {first}" if first is not None else "never here"
        lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {reached} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile", type=Path, nargs="?", help="profile.json written by tools/profile.py")
    ap.add_argument("--equal-work", type=Path, nargs="+", metavar="JSON",
                    help="instead: fit the work/span bound on these equal_work.json sweeps (tools/profile.py "
                         "--equal-work), each row's work and span counted, and report each latency form's error")
    ap.add_argument("--held-size", type=int, default=64, help="with --equal-work: the frame size held back [64]")
    ap.add_argument("--threads", type=int, help="thread count whose rows to fit [the largest]")
    ap.add_argument("--gpu-tflops", type=float, default=GPU_TFLOPS)
    ap.add_argument("--utilisation", type=float, default=UTILISATION)
    ap.add_argument("--launch-us", type=float, default=LAUNCH_US)
    ap.add_argument("--lengths", default="8,16,32,64,128,256,512", help="T for the projection")
    args = ap.parse_args(argv)
    if args.equal_work:
        rows = equal_work_rows(args.equal_work)
        print(f"## The work/span bound fitted on {', '.join(map(str, args.equal_work))}\n")
        print(bound_report(rows, args.held_size))
        size = max(r["size"] for r in rows)
        print(f"\n## GPU projection of the sweep at {size}x{size} (projected, not measured): {args.gpu_tflops:g} "
              f"TFLOPS x {args.utilisation:g}, {args.launch_us:g} us per launch; eager ms / span floor ms\n")
        print(equal_work_projection(rows, tflops=args.gpu_tflops, utilisation=args.utilisation,
                                    launch_us=args.launch_us))
        return 0
    if args.profile is None:
        ap.error("give a profile.json, or --equal-work JSON ...")
    rows = [r for r in json.loads(args.profile.read_text())["rows"] if not r.get("error")]
    threads = args.threads or max(r.get("threads") or 1 for r in rows)
    rows = [r for r in rows if (r.get("threads") or 1) == threads]
    print(f"## Fit on the CPU profile ({args.profile}, {threads} threads)\n")
    print("| model | c0 (ms) | ms per GFLOP | ms per dependent step | fit error (mean) | held back: mean | max |")
    print("|---|---|---|---|---|---|---|")
    for name in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == name]
        train = [r for r in mine if r["T"] <= 64 and r["batch"] in (1, 8)]
        held = [r for r in mine if r not in train]
        m = fit(train)

        def err(rs, m=m):
            return [abs(predict(m, r) - r["latency_median_ms"]) / r["latency_median_ms"] for r in rs]
        e_fit, e_held = err(train), err(held)
        held_cells = (f"{100 * np.mean(e_held):.0f}% ({len(held)} rows) | {100 * max(e_held):.0f}%" if held
                      else "- | -")
        print(f"| `{name}` | {m['c0_ms']:.2f} | {m['ms_per_gflop']:.2f} | {m['c_step_ms']:.3f} | "
              f"{100 * np.mean(e_fit):.0f}% | {held_cells} |")
    lengths = [int(v) for v in args.lengths.split(",")]
    print(f"\n## GPU projection (projected, not measured): {args.gpu_tflops:g} TFLOPS x {args.utilisation:g}, "
          f"{args.launch_us:g} us per launched operator, batch 1, 64x64, eager\n")
    print("| model | " + " | ".join(f"T={t}" for t in lengths) + " |")
    print("|---|" + "---|" * len(lengths))
    for label, (name, kwargs) in PROJECTED.items():
        cells = []
        for t in lengths:
            p = project(name, kwargs, t, tflops=args.gpu_tflops, utilisation=args.utilisation,
                        launch_us=args.launch_us)
            cells.append(f"{p['ms']:.2f} ms ({p['kernels']} ops, {p['bound']})")
        print(f"| `{label}` | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
