"""A latency model fitted to the CPU profile, and what it projects for a GPU (projected, not measured).

    python tools/profile.py --models rcn_gru_s,rcn_mingru_s,c3d_s --lengths 8,16,32,64,128 --batch 1,4,8 \\
        --iters 10 --no-stream --out outputs/profile_model
    python benchmarks/latency_model.py outputs/profile_model/profile.json [--threads N]

**Fit (CPU, measured).** Per model, ``latency = c0 + GFLOPs / throughput + steps x c_step`` by least squares on the
rows of one thread count with T <= 64 and batch 1 or 8 (``steps``: dependent time steps on the critical path, as the
profiler counts them); a negative coefficient is dropped and the rest refitted. The rows held back (T = 128, and
batch 4 at every T) measure how well it predicts what it was not fitted on.

**Projection (GPU, not measured).** An eager forward pass launches one kernel per operator; a kernel that does
little work costs about its launch. Projected latency = max(FLOPs / (peak x utilisation), kernels x launch cost),
with the kernel count of a batch-1 forward pass counted here (every ATen operator, ``TorchDispatchMode``). Defaults:
H100 SXM dense BF16 peak 989.4 TFLOPS (NVIDIA's figure, as tabulated at glennklockwood.com/garden/processors/h100),
utilisation 0.3 (an assumption: small convolutions reach far less), and 1.2 microseconds per launched operator
(an elementwise add measured at 1.1-1.3 us end to end on a CUDA GPU in pytorch/pytorch#161104). The T at which
the launches overtake the work is where the sequential bottleneck would dominate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vidrcnn.models import get_model

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


class _OpCount(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def kernels_and_flops(name: str, kwargs: dict, t: int, size: int = 64) -> tuple[int, float]:
    """ATen operators of one batch-1 forward pass at ``t`` frames, and its FLOPs."""
    from vidrcnn.profiling.measure import count_flops

    torch.manual_seed(0)
    model = get_model(name, num_classes=10, **kwargs).eval()
    x = torch.randn(1, 3, t, size, size)
    with torch.no_grad():
        flops = count_flops(lambda: model(x), model)
        with _OpCount() as counter:
            model(x)
    return counter.ops, float(flops)


def project(name: str, kwargs: dict, t: int, *, size: int = 64, tflops: float = GPU_TFLOPS,
            utilisation: float = UTILISATION, launch_us: float = LAUNCH_US) -> dict:
    """The projected latency of a batch-1 eager forward pass: ``{"ms", "kernels", "bound"}`` (work or launch)."""
    kernels, flops = kernels_and_flops(name, kwargs, t, size)
    work_ms, launch_ms = 1e3 * flops / (tflops * 1e12 * utilisation), kernels * launch_us / 1e3
    return {"ms": max(work_ms, launch_ms), "kernels": kernels, "bound": "launch" if launch_ms > work_ms else "work"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile", type=Path, help="profile.json written by tools/profile.py")
    ap.add_argument("--threads", type=int, help="thread count whose rows to fit [the largest]")
    ap.add_argument("--gpu-tflops", type=float, default=GPU_TFLOPS)
    ap.add_argument("--utilisation", type=float, default=UTILISATION)
    ap.add_argument("--launch-us", type=float, default=LAUNCH_US)
    ap.add_argument("--lengths", default="8,16,32,64,128,256,512", help="T for the projection")
    args = ap.parse_args(argv)
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
