"""One training step as ``tools/train.py`` runs it, eagerly and replayed as a CUDA graph.

Figures: docs/guide/performance.md, "CUDA graphs and compiled cell steps" (part of the GPU suite; not yet run on a
GPU).

One training step as ``tools/train.py`` runs it (forward, loss, backward, gradient clipping, AdamW's step; bf16
autocast on CUDA), eagerly and, on CUDA, captured as one CUDA graph and replayed (``train.cuda_graph``,
``vidrcnn.engine.train_step.GraphedStep``); optionally with the cells' steps compiled (``train.compile_step``).
The GPU issue's training target is rcn_gru_s against c3d_s at equal work, T = 16 x batch 4 at 64x64.

    python benchmarks/train_step.py [--device cuda] [--models rcn_gru_s,c3d_s] [--quick]

Part of ``benchmarks/gpu_suite.py``, whose report shows the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Sequence

import torch

from vidrcnn.engine.config import OptimConfig
from vidrcnn.engine.schedule import Schedule
from vidrcnn.engine.state import TrainState
from vidrcnn.engine.train import build_optimizer
from vidrcnn.engine.train_step import GraphedStep, forward_loss, update
from vidrcnn.layers import compile_steps
from vidrcnn.models import get_model
from vidrcnn.profiling.measure import time_fn

MODELS = ("rcn_gru_s", "c3d_s")


def _state(name: str, device: torch.device, *, graph: bool, compiled: bool) -> TrainState:
    torch.manual_seed(0)
    model = get_model(name, num_classes=10).to(device).train()
    if compiled:
        compile_steps(model)
    cuda = device.type == "cuda"
    return TrainState(model=model, optimizer=build_optimizer(model, OptimConfig(), 1e-3, capturable=graph),
                      schedule=Schedule(1e-3, steps_per_epoch=1, epochs=1), device=device,
                      autocast=torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda, cache_enabled=not graph)
                      if cuda else contextlib.nullcontext(),
                      scaler=torch.amp.GradScaler(device.type, enabled=False), clip_grad=1.0)


def measure(device: str, models: Sequence[str] = MODELS, *, batch: int = 4, frames: int = 16, size: int = 64,
            warmup: int = 5, iters: int = 20, compiled: bool = True) -> list[dict]:
    """One row per (model, how): the median ms of one training step, eager and (CUDA) graph-replayed, each also
    with compiled cell steps when ``compiled``; ``vs_baseline`` is each row's time over the last model's (the
    baseline: c3d_s by default) in the same kind of step, the ratio the training target names."""
    dev = torch.device(device)
    kinds = [("eager", False, False)] + ([("graph", True, False)] if dev.type == "cuda" else [])
    if compiled:
        kinds += [(f"{kind}, compiled cell steps", graph, True) for kind, graph, _ in kinds]
    rows = []
    for name in models:
        x = torch.randn(batch, 3, frames, size, size, device=dev)
        y = torch.randint(0, 10, (batch,), device=dev)
        for kind, graph, comp in kinds:
            state = _state(name, dev, graph=graph, compiled=comp)
            step = GraphedStep(state) if graph else lambda x, y, s=state: update(s, forward_loss(s, x, y)[1])
            timing = time_fn(lambda step=step, x=x, y=y: step(x, y), device=dev, warmup=warmup, iters=iters)
            rows.append({"model": name, "how": kind, "batch": batch, "T": frames, "size": size,
                         "ms": round(timing.median_ms, 4)})
    base = {r["how"]: r["ms"] for r in rows if r["model"] == models[-1]}
    for r in rows:
        r.update(baseline=models[-1], vs_baseline=round(r["ms"] / base[r["how"]], 3))
    return rows


def markdown(rows: Sequence[dict]) -> str:
    base = rows[0]["baseline"] if rows else ""
    lines = [f"| model | step | batch x T, size | median ms | over {base}'s |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['how']} | {r['batch']} x {r['T']}, {r['size']}x{r['size']} | {r['ms']:.4g} | "
              f"{r['vs_baseline']:.3g} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--quick", action="store_true", help="batch 2 x T 4 at 32x32, two steps, eager only (tested)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON, not a table")
    args = ap.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    if args.quick:
        rows = measure(args.device, models, batch=2, frames=4, size=32, warmup=1, iters=2, compiled=False)
    else:
        rows = measure(args.device, models)
    print(json.dumps(rows, indent=1) if args.json else markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
