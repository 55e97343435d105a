"""How fast does this CPU run the convolutions a recurrent layer is made of, per FLOP, by batch and memory layout?

A ConvLSTM layer at ``B, C_in -> C_h, HxW, T`` runs either T per-step convolutions over ``[x_t, h_{t-1}]`` (the
common reference) or one input convolution over all ``B*T`` frames plus T-1 state convolutions (the package). Both
do the same FLOPs, so which is faster is decided by how many GFLOP/s the CPU reaches on each shape. This prints,
for the shapes of ``convlstm_reference.py``'s configurations, the rate of the forward, the weight gradient and the
input gradient of each convolution, in NCHW and in channels-last.

    python benchmarks/convlstm_reference.py ...   # the layers
    python benchmarks/conv_layouts.py [--threads 2] [--iters 20]   # their convolutions alone
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from bench_args import add_layer_configs, layer_configs, parse, stat_ms, timing_parser
from torch.nn.grad import conv2d_input, conv2d_weight

from vidrcnn.profiling import time_fn


def shapes(b: int, cin: int, ch: int, size: int, t: int) -> list[tuple[str, int, int, int, int]]:
    """``(what, batch, in, out, size)`` of the convolutions one ConvLSTM layer runs."""
    return [("reference, per step: [x, h] -> 4h", b, cin + ch, 4 * ch, size),
            ("package, batched input conv: x -> 4h over B*T", b * t, cin, 4 * ch, size),
            ("package, per step: h -> 4h", b, ch, 4 * ch, size)]


def rates(n: int, cin: int, cout: int, size: int, layout: torch.memory_format, args) -> dict[str, float]:
    """GFLOP/s of forward, weight gradient and input gradient of a 3x3 'same' convolution."""
    x, w, g = torch.randn(n, cin, size, size), torch.randn(cout, cin, 3, 3), torch.randn(n, cout, size, size)
    x, w, g = (a.contiguous(memory_format=layout) for a in (x, w, g))
    gflop = 2 * n * cin * cout * 9 * size * size / 1e9
    calls = {"fwd": lambda: F.conv2d(x, w, padding=1),
             "wgrad": lambda: conv2d_weight(x, w.shape, g, padding=1),
             "igrad": lambda: conv2d_input(x.shape, w, g, padding=1)}
    return {k: gflop / stat_ms(time_fn(f, iters=args.iters), args) * 1e3 for k, f in calls.items()}


def main(argv: list[str] | None = None) -> None:
    ap = timing_parser(__doc__)
    add_layer_configs(ap)
    args = parse(ap, argv)
    torch.manual_seed(0)
    print(f"GFLOP/s from the {args.stat} of {args.iters} calls, threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}")
    print("| layer B x C_in x C_h x H=W x T | convolution | N | NCHW fwd | NCHW wgrad | NCHW igrad | "
          "channels-last fwd | channels-last wgrad | channels-last igrad |")
    print("|---|---|---|---|---|---|---|---|---|")
    for config in layer_configs(args):
        spec = "x".join(map(str, config))
        for what, n, cin, cout, size in shapes(*config):
            nchw = rates(n, cin, cout, size, torch.contiguous_format, args)
            cl = rates(n, cin, cout, size, torch.channels_last, args)
            cells = " | ".join(f"{r[k]:.0f}" for r in (nchw, cl) for k in ("fwd", "wgrad", "igrad"))
            print(f"| {spec} | {what} | {n} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
