"""Training memory and step time with gradient checkpointing over time (``model.kwargs.checkpoint_every``).

Figures: docs/guide/performance.md, "Gradient checkpointing: training memory".

    python benchmarks/checkpoint_memory.py [--model rcn_gru_s] [--lengths 16,32,64] [--every 0,4,8,16]
                                           [--batch 8] [--size 64] [--steps 3] [key=value builder options ...]

Each (T, k) runs in a fresh process (``k = 0``: no checkpointing), so that the heap one run grew does not hide the
next one's: the peak memory of its first training step (forward + backward, cross-entropy on a random clip batch)
over the level before it (CPU: the resident set sampled every millisecond; CUDA: the allocator's peak); on a second
step, counted tensor by tensor (the same on every machine): the peak of live CPU tensor bytes and the activations
held for backward; then the median time of ``--steps`` more steps. Prints a markdown table with each k's memory and
time as a ratio of k = 0's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def child(spec: dict) -> dict:
    """One configuration, in this process: ``{"peak_mem_delta_mb", "peak_mem_mb", "tensor_peak_mb",
    "held_for_backward_mb", "step_ms"}``."""
    import torch
    import torch.nn.functional as F

    from vidrcnn.models import get_model
    from vidrcnn.profiling import held_for_backward, peak_memory, tensor_peak_memory

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    kwargs = dict(spec["kwargs"], **({"checkpoint_every": spec["every"]} if spec["every"] else {}))
    model = get_model(spec["model"], num_classes=10, **kwargs).to(spec["device"]).train()
    x = torch.randn(spec["batch"], 3, spec["T"], spec["size"], spec["size"], device=spec["device"])
    y = torch.zeros(spec["batch"], dtype=torch.long, device=spec["device"])

    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    with peak_memory(spec["device"]) as mem:
        step()
    with tensor_peak_memory() as tensors, held_for_backward() as held:  # the same step, counted tensor by tensor
        step()
    times = []
    for _ in range(spec["steps"]):
        start = time.perf_counter()
        step()
        if spec["device"] == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return {**mem, **tensors, **held, "step_ms": statistics.median(times) if times else None}


def measure(spec: dict) -> dict:
    """:func:`child` in a fresh Python process."""
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], check=False, capture_output=True,
                         text=True,
                         timeout=600)
    if out.returncode:
        raise RuntimeError(f"{spec}: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="rcn_gru_s")
    ap.add_argument("--lengths", type=_ints, default=[16, 32, 64])
    ap.add_argument("--every", type=_ints, default=[0, 4, 8, 16], help="chunk lengths k; 0: no checkpointing")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3, help="timed steps after the measured first one")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("options", nargs="*", metavar="key=value", help="builder options (JSON values)")
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error("--steps must be >= 1")
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    kwargs = {}
    for option in args.options:
        key, sep, value = option.partition("=")
        if not sep:
            ap.error(f"builder options are key=value, got {option!r}")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    every = sorted(set(args.every) | {0})
    print(f"{args.model} {kwargs or ''}, batch {args.batch}, {args.size}x{args.size}, {args.threads} thread(s), "
          f"{args.device}; first step's peak memory over the level before it, median of {args.steps} steps\n")
    print("| T | checkpoint_every | step peak +MB (RSS) | plain / this | tensor peak MB | plain / this | "
          "held for backward MB | plain / this | step ms | this / plain, time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for t in args.lengths:
        base = None
        for k in every:
            r = measure({"model": args.model, "kwargs": kwargs, "T": t, "every": k, "batch": args.batch,
                         "size": args.size, "steps": args.steps, "threads": args.threads, "device": args.device})
            base = base or r
            memory = " | ".join(f"{r[key]:.0f} | {base[key] / r[key]:.2f}x"
                                for key in ("peak_mem_delta_mb", "tensor_peak_mb", "held_for_backward_mb"))
            print(f"| {t} | {k or 'off'} | {memory} | {r['step_ms']:.0f} | {r['step_ms'] / base['step_ms']:.2f}x |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
