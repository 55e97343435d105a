"""Batching the input convolution over all T frames against the step-by-step recurrent layer.

``ConvRecurrent(batch_input_conv=True)`` runs the input convolution (which never looks at the state) once over all
``B*T`` frames and leaves only the state convolution in the time loop; ``batch_input_conv=False`` runs both inside
the loop. Same weights, same outputs (checked before timing).

    python benchmarks/input_conv_batching.py [--threads 2] [--iters 10] [--T 16]

prints forward and forward+backward latency per cell, for one layer and for the whole ``rcn_<cell>_s`` model.
"""

from __future__ import annotations

import torch
from bench_args import parse, stat_ms, timing_parser
from torch import nn

from vidrcnn.layers import ConvRecurrent
from vidrcnn.models import get_model
from vidrcnn.profiling import forward_backward, time_fn


def _pair(kind: str, cell: str, t: int, batch: int) -> tuple[nn.Module, nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if kind == "layer":  # rcn_*_s's first recurrent layer: 32 stem maps in, 48 out, 16x16 (64x64 frames / 4)
        fast, plain = ConvRecurrent(32, 48, cell=cell), ConvRecurrent(32, 48, cell=cell, batch_input_conv=False)
        x = torch.randn(batch, 32, t, 16, 16)
    else:
        fast = get_model(f"rcn_{cell}_s", num_classes=10)
        plain = get_model(f"rcn_{cell}_s", num_classes=10, batch_input_conv=False)
        x = torch.randn(batch, 3, t, 64, 64)
    plain.load_state_dict(fast.state_dict())
    return fast.eval(), plain.eval(), x


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def main(argv: list[str] | None = None) -> None:
    ap = timing_parser(__doc__)
    ap.add_argument("--T", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--cells", default="gru,lstm,rnn")
    args = parse(ap, argv)
    print(f"{args.stat} of {args.iters} calls, threads {torch.get_num_threads()}, torch {torch.__version__}, T={args.T}, batch {args.batch}")
    print("| what | cell | step-by-step fwd ms | batched fwd ms | fwd speed-up | step-by-step fwd+bwd ms | "
          "batched fwd+bwd ms | fwd+bwd speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("layer", "model"):
        for cell in args.cells.split(","):
            fast, plain, x = _pair(kind, cell, args.T, args.batch)
            with torch.no_grad():
                torch.testing.assert_close(_first(fast(x)), _first(plain(x)), atol=1e-4, rtol=1e-4)
            res = {}
            for name, m in (("plain", plain), ("fast", fast)):
                with torch.no_grad():
                    res[name, "fwd"] = stat_ms(time_fn(lambda m=m, x=x: m(x), iters=args.iters), args)
                res[name, "bwd"] = stat_ms(time_fn(forward_backward(m, x), iters=args.iters), args)
            what = "layer 32->48 @16x16" if kind == "layer" else f"rcn_{cell}_s @64x64"
            print(f"| {what} | {cell} | {res['plain', 'fwd']:.1f} | {res['fast', 'fwd']:.1f} | "
                  f"{res['plain', 'fwd'] / res['fast', 'fwd']:.2f}x | {res['plain', 'bwd']:.1f} | "
                  f"{res['fast', 'bwd']:.1f} | {res['plain', 'bwd'] / res['fast', 'bwd']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
