"""Latency growth with T: the parallel-scan cell (``mingru``) against the sequential ConvGRU and the 3-D CNN.

    python benchmarks/mingru_vs_gru.py [--threads 2] [--iters 10] [--lengths 8,16,32,64]

Part 1, forward latency against T for one recurrent layer at matched width (48 -> 64 maps, 16x16) and for whole
models: ``rcn_gru_s``, ``rcn_mingru_s`` at the GRU's widths (matched width), ``rcn_mingru_s`` as registered (its
widths match the GRU's parameter budget instead), ``c3d_s``; with the ratio gru / mingru at every T.
Part 2, the scan evaluations of ``rcn_mingru_s`` (sequential loop, Hillis-Steele, log-space) at the longest T,
forward and forward+backward.
"""

from __future__ import annotations

import argparse

import torch
from bench_args import parse, stat_ms, timing_parser
from torch import nn

from vidrcnn.layers import ConvRecurrent
from vidrcnn.layers.mingru import MinGRUCell
from vidrcnn.models import RCN, get_model, list_models
from vidrcnn.models.backbones import build_stem
from vidrcnn.profiling import forward_backward, time_fn

MINGRU_S_WIDTHS = (96, 128)  # rcn_mingru_s's registered widths: about rcn_gru_s's parameter budget


def rcn_mingru_s(channels: tuple[int, ...] | None = None, **cell_kwargs) -> nn.Module:
    """``rcn_mingru_s`` from the registry, or built from its classes where the registry does not have it yet."""
    if "rcn_mingru_s" in list_models():
        kw = {"channels": channels} if channels else {}
        return get_model("rcn_mingru_s", num_classes=10, **kw, **cell_kwargs)
    stem, stem_channels = build_stem("small", widths=(16, 32), strides=(2, 2))
    return RCN(num_classes=10, cell=MinGRUCell, stem=stem, stem_channels=stem_channels,
               channels=channels or MINGRU_S_WIDTHS, pool_after=(True, False), cell_kwargs=cell_kwargs)


def _forward_ms(model: nn.Module, x: torch.Tensor, args: argparse.Namespace) -> float:
    with torch.no_grad():
        return stat_ms(time_fn(lambda: model(x), iters=args.iters), args)


def main(argv: list[str] | None = None) -> None:
    ap = timing_parser(__doc__)
    ap.add_argument("--lengths", default="8,16,32,64")
    ap.add_argument("--batch", type=int, default=1)
    args = parse(ap, argv)
    lengths = [int(v) for v in args.lengths.split(",")]
    gru_widths = get_model("rcn_gru_s", num_classes=10).layers
    widths = [layer.cell.hidden_channels for layer in gru_widths]
    torch.manual_seed(0)
    contenders = {
        "layer gru 48->64": (ConvRecurrent(48, 64, cell="gru"), (48, 16)),
        "layer mingru 48->64": (ConvRecurrent(48, 64, cell=MinGRUCell), (48, 16)),
        "rcn_gru_s": (get_model("rcn_gru_s", num_classes=10), (3, 64)),
        f"rcn_mingru_s widths {tuple(widths)}": (rcn_mingru_s(tuple(widths)), (3, 64)),
        "rcn_mingru_s (registered)": (rcn_mingru_s(), (3, 64)),
        "c3d_s": (get_model("c3d_s", num_classes=10), (3, 64)),
    }
    print(f"{args.stat} of {args.iters} calls, threads {torch.get_num_threads()}, torch {torch.__version__}, batch {args.batch}")
    print("| model | params | " + " | ".join(f"T={t} ms" for t in lengths) + f" | T={lengths[0]}->{lengths[-1]} |")
    print("|---|---|" + "---|" * (len(lengths) + 1))
    table: dict[str, list[float]] = {}
    for name, (model, (c, size)) in contenders.items():
        model.eval()
        ms = [_forward_ms(model, torch.randn(args.batch, c, t, size, size), args) for t in lengths]
        table[name] = ms
        params = sum(p.numel() for p in model.parameters())
        print(f"| {name} | {params} | " + " | ".join(f"{v:.1f}" for v in ms) + f" | x{ms[-1] / ms[0]:.2f} |",
              flush=True)
    for gru, mingru in (("layer gru 48->64", "layer mingru 48->64"),
                        ("rcn_gru_s", f"rcn_mingru_s widths {tuple(widths)}"),
                        ("rcn_gru_s", "rcn_mingru_s (registered)")):
        ratios = ", ".join(f"T={t}: {g / m:.2f}x" for t, g, m in zip(lengths, table[gru], table[mingru]))
        print(f"speed-up {gru} / {mingru}: {ratios}")

    t = lengths[-1]
    x = torch.randn(args.batch, 3, t, 64, 64)
    print(f"\nrcn_mingru_s scan evaluations at T={t}:")
    print("| scan | fwd ms | fwd+bwd ms |")
    print("|---|---|---|")
    base = rcn_mingru_s().eval()
    for scan in ("sequential", "hillis", "log"):
        model = rcn_mingru_s(scan=scan).eval()
        model.load_state_dict(base.state_dict())
        print(f"| {scan} | {_forward_ms(model, x, args):.1f} | "
              f"{stat_ms(time_fn(forward_backward(model, x), iters=args.iters), args):.1f} |", flush=True)


if __name__ == "__main__":
    main()
