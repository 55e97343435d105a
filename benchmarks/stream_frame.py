"""What one streamed frame costs in each step mode, against a 3-D CNN re-running its window for every new frame.

Figures: docs/guide/performance.md, "BatchNorm folding" and "CUDA graphs and compiled cell steps" (CPU); on a GPU
part of the GPU suite.

One streamed frame: what stepping a causal model by one frame with carried state costs in each step mode
(``vidrcnn.inference.stream_runner``), against a 3-D CNN re-running its 16-frame window for every new frame; and
how many streams K one batched step serves within a frame's budget (40 ms: 25 fps); and a 64-frame clip at once,
timed and with its kernels counted (``torch.profiler``: CUDA kernels on a GPU, top-level operators on the CPU), and
on CUDA replayed as one graph. Each recurrent model is measured again with its cells' steps compiled
(``vidrcnn.layers.compile_steps``: the gate arithmetic fused, fewer kernels per step). Every model is measured as
``tools/infer.py`` runs it, each BatchNorm folded into the convolution before it (``vidrcnn.layers.fold_batch_norms``);
the streamed frame of each recurrent model is timed once more unfolded, to show what the fold saves.

    python benchmarks/stream_frame.py [--device cuda] [--models rcn_gru_m,...] [--windows c3d_m,...] [--quick]
        [--no-compile]

The modes: on CUDA ``chunk`` (eager ``model.stream``) and ``graph`` (the step replayed as a CUDA graph), on the CPU
``chunk`` and ``frame`` (the graph's fixed buffers, stepped eagerly). A window model is timed eagerly and, on CUDA,
as a replayed graph of its forward pass. Part of ``benchmarks/gpu_suite.py``, whose report shows the figures.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
from collections.abc import Callable, Sequence

import torch

from vidrcnn.engine.cuda_graphs import capture_cuda_graph
from vidrcnn.inference.stream_runner import make_stepper
from vidrcnn.layers import compile_steps, fold_batch_norms
from vidrcnn.models import get_model
from vidrcnn.profiling.measure import count_kernels, time_fn
from vidrcnn.profiling.run import natural_size

STREAM_MODELS = ("rcn_gru_m", "rcn_lstm_m", "rcn_mingru_m")
WINDOW_MODELS = ("c3d_m", "r2plus1d_18")
WINDOW = 16  # frames a window model re-runs for every new frame
CLIP = 64  # the clip whose kernels are counted (the GPU issue's 64-frame target: <= 1,000 kernels)


def modes(device: str) -> tuple[str, str]:
    """The eager mode first, the fast one second."""
    return ("chunk", "graph") if torch.device(device).type == "cuda" else ("chunk", "frame")


def graphed(fn: Callable[[], torch.Tensor], device: str) -> Callable[[], torch.Tensor]:
    """``fn`` (reading fixed input tensors) captured once as a CUDA graph; the returned call replays it."""
    graph, out = capture_cuda_graph(fn, device)
    return lambda: (graph.replay(), out)[1]


@torch.no_grad()
def measure(device: str, models: Sequence[str], windows: Sequence[str], *, size: int | None = None, warmup: int = 3,
            iters: int = 20, budget_ms: float = 40.0, max_streams: int = 1024, clip: int = CLIP,
            compiled: bool = True) -> list[dict]:
    """One row per (model, what is timed): ``ms`` is the median time of one call; the clip rows also count the
    kernels (CUDA) or operators (CPU) one call launches. ``compiled``: each recurrent model also with its cells'
    steps compiled (``vidrcnn.layers.compile_steps``), the streamed frame in the fast mode and the clip."""
    rows = []

    def row(name: str, what: str, batch: int, timing, **extra) -> None:
        rows.append({"model": name, "what": what, "batch": batch, "ms": round(timing.median_ms, 4), **extra})

    def clip_row(name: str, model, side: int, how: str = "eager") -> None:  # the whole clip at once
        x = torch.randn(1, 3, clip, side, side, device=device)
        model(x)  # compiles first where it compiles: the count is of what a call launches after
        count, kind = count_kernels(functools.partial(model, x), device)
        if how != "eager" and kind != "CUDA kernels":  # the CPU count sees no operator inside compiled code
            count, kind = "", ""
        row(name, f"a {clip}-frame clip ({how})", 1, time_fn(functools.partial(model, x), device=device,
                                                             warmup=warmup, iters=iters), kernels=count, counted=kind)
        if torch.device(device).type == "cuda":  # the same clip replayed as one CUDA graph: no launch cost left
            row(name, f"a {clip}-frame clip ({how}, graph)", 1,
                time_fn(graphed(functools.partial(model, x), device), device=device, warmup=warmup, iters=iters))

    for name in models:
        model = get_model(name, num_classes=10).to(device).eval()
        side = size or natural_size(name, model)
        frame = torch.randn(1, 3, 1, side, side, device=device)
        row(name, f"one streamed frame ({modes(device)[1]}, norms not folded)", 1,
            time_fn(functools.partial(make_stepper(model, modes(device)[1], device), frame), device=device,
                    warmup=warmup, iters=iters))
        fold_batch_norms(model)  # as tools/infer.py runs it
        for mode in modes(device):
            stepper = make_stepper(model, mode, device)
            row(name, f"one streamed frame ({mode})", 1, time_fn(functools.partial(stepper, frame), device=device,
                                                                   warmup=warmup, iters=iters))
        clip_row(name, model, side)
        fast, streams, best = modes(device)[1], 1, None
        if compiled:
            fused = copy.deepcopy(model)
            compile_steps(fused)
            stepper = make_stepper(fused, fast, device)
            frame = torch.randn(1, 3, 1, side, side, device=device)
            row(name, f"one streamed frame ({fast}, compiled cell steps)", 1,
                time_fn(functools.partial(stepper, frame), device=device, warmup=warmup, iters=iters))
            clip_row(name, fused, side, "compiled cell steps")
        while streams <= max_streams:  # K streams stepped together: one batched step per frame
            stepper = make_stepper(model, fast, device)
            frames = torch.randn(streams, 3, 1, side, side, device=device)
            timing = time_fn(functools.partial(stepper, frames), device=device, warmup=warmup, iters=max(2, iters // 4))
            if timing.median_ms > budget_ms:
                break
            best, streams = (streams, timing), streams * 4
        if best is not None:
            row(name, f"most streams in one step within {budget_ms:g} ms ({fast}; tried x4 up to {max_streams})",
                best[0], best[1])
    for name in windows:
        model = get_model(name, num_classes=10).to(device).eval()
        fold_batch_norms(model)
        side = size or natural_size(name, model)
        window = torch.randn(1, 3, WINDOW, side, side, device=device)
        row(name, f"a {WINDOW}-frame window per new frame (eager)", 1,
            time_fn(functools.partial(model, window), device=device, warmup=warmup, iters=iters))
        if torch.device(device).type == "cuda":
            replay = graphed(functools.partial(model, window), device)
            row(name, f"a {WINDOW}-frame window per new frame (graph)", 1,
                time_fn(replay, device=device, warmup=warmup, iters=iters))
        clip_row(name, model, side)
    return rows


def markdown(rows: Sequence[dict]) -> str:
    lines = ["| model | what | batch | median ms | kernels (CUDA) or operators (CPU) |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['what']} | {r['batch']} | {r['ms']:.4g} | {r.get('kernels', '')} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", default=",".join(STREAM_MODELS))
    ap.add_argument("--windows", default=",".join(WINDOW_MODELS))
    ap.add_argument("--quick", action="store_true", help="rcn_gru_s and c3d_s at 32x32, two calls each (tested)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON, not a table")
    ap.add_argument("--no-compile", action="store_true", help="skip the rows with compiled cell steps")
    args = ap.parse_args(argv)
    if args.quick:
        rows = measure(args.device, ["rcn_gru_s"], ["c3d_s"], size=32, warmup=1, iters=2, max_streams=4, clip=8,
                       compiled=False)
    else:
        rows = measure(args.device, [m for m in args.models.split(",") if m], [m for m in args.windows.split(",") if m],
                       compiled=not args.no_compile)
    print(json.dumps(rows, indent=1) if args.json else markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
