"""Where the time loop of a recurrent model goes: torch.profiler's top operators, forward and forward+backward.

    python benchmarks/time_loop_profile.py [--models rcn_gru_s,rcn_lstm_s] [--T 16] [--batch 4] [--threads 2]

For each model and each evaluation of the layer (step by step, with the input convolution batched, and with
``--legacy`` also the batched layer's time loop as it was before optimisation, see ``convlstm_reference.legacy_loop``)
prints the operators with the most self CPU time, their call counts (a count of T x layers marks an op inside the
loop) and the share of the total.
"""

from __future__ import annotations

import argparse

import torch
from convlstm_reference import legacy_loop
from torch.profiler import ProfilerActivity, profile

from vidrcnn.models import get_model


def top_ops(fn, rows: int) -> tuple[float, list[tuple[str, int, float]]]:
    """Total self CPU ms and the ``rows`` operators with most self CPU time: (name, calls, ms)."""
    fn()  # warm-up outside the trace
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events) / 1e3
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return total, [(e.key, e.count, e.self_cpu_time_total / 1e3) for e in events[:rows]]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="rcn_gru_s,rcn_lstm_s")
    ap.add_argument("--T", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--legacy", action="store_true", help="also profile the time loop before optimisation")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    x = torch.randn(args.batch, 3, args.T, 64, 64)
    print(f"threads {torch.get_num_threads()}, torch {torch.__version__}, T={args.T}, batch {args.batch}, 64x64")
    for name in args.models.split(","):
        modes = [("step by step", False), ("input conv batched", True)]
        if args.legacy:
            modes.insert(1, ("input conv batched, loop before optimisation", True))
        for mode, batched in modes:
            model = get_model(name, num_classes=10, batch_input_conv=batched).eval()
            if "before" in mode:
                for layer in model.layers:
                    legacy_loop(layer)

            def forward(model=model) -> None:
                with torch.no_grad():
                    model(x)

            def train_step(model=model) -> None:
                model.zero_grad(set_to_none=True)
                model(x).square().mean().backward()

            for what, fn in (("forward", forward), ("forward+backward", train_step)):
                total, ops = top_ops(fn, args.rows)
                print(f"\n{name}, {mode}, {what}: {total:.1f} ms self CPU in total")
                print("| op | calls | self CPU ms | share |")
                print("|---|---|---|---|")
                for key, calls, ms in ops:
                    print(f"| {key} | {calls} | {ms:.1f} | {100 * ms / total:.0f}% |")


if __name__ == "__main__":
    main()
