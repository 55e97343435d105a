"""How far can restructuring a ConvLSTM layer go when its FLOPs stay the same? A hand-written BPTT prototype.

``LSTMSequence`` runs the whole time loop of a zero-initial-state ConvLSTM (no peepholes) in one autograd.Function:
the forward saves the gate activations, the backward walks back in time computing only the input gradient of the
state convolution per step, then ONE weight-gradient convolution over all ``B*(T-1)`` steps, and hands the stacked
gate gradients to the batched input convolution. That is what cuDNN's RNNs do for matrices. Not in the package: it
is a measurement of the ceiling of this kind of rewrite (docs/guide/performance.md), checked against autograd below.

    python benchmarks/fused_lstm_prototype.py [--threads 2] [--iters 10]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from bench_args import add_layer_configs, layer_configs, parse, stat_ms, timing_parser
from convlstm_reference import ConvLSTMRef
from einops import rearrange
from torch import Tensor
from torch.nn.grad import conv2d_input, conv2d_weight

from vidrcnn.layers import ConvRecurrent
from vidrcnn.profiling import time_fn


class LSTMSequence(torch.autograd.Function):
    """``xin`` ``(B, T, 4C, H, W)`` (input-conv output, gates i, f, c, o), ``weight`` the state convolution's."""

    @staticmethod
    def forward(ctx, xin: Tensor, weight: Tensor) -> Tensor:
        pad = weight.shape[-1] // 2
        hs, cs, acts = [], [], []
        h = c = None
        for xt in xin.unbind(1):
            gi, gf, gc, go = (xt if h is None else xt + F.conv2d(h, weight, padding=pad)).chunk(4, 1)
            i, f, g, o = torch.sigmoid(gi), torch.sigmoid(gf), torch.tanh(gc), torch.sigmoid(go)
            c = i * g if c is None else f * c + i * g
            tc = torch.tanh(c)
            h = o * tc
            hs.append(h)
            cs.append(c)
            acts.append((i, f, g, o, tc))
        ctx.save_for_backward(weight)
        ctx.hs, ctx.cs, ctx.acts, ctx.pad = hs, cs, acts, pad
        return torch.stack(hs, 1)

    @staticmethod
    def backward(ctx, dout: Tensor) -> tuple[Tensor, Tensor]:
        (weight,) = ctx.saved_tensors
        hs, cs, acts, pad = ctx.hs, ctx.cs, ctx.acts, ctx.pad
        dgates: list[Tensor] = [dout] * len(hs)
        dh_next = dc = None
        for t in range(len(hs) - 1, -1, -1):
            i, f, g, o, tc = acts[t]
            dh = dout[:, t] if dh_next is None else dout[:, t] + dh_next
            dct = dh * o * (1 - tc * tc)
            dc = dct if dc is None else dc + dct
            dgf = dc * cs[t - 1] * f * (1 - f) if t > 0 else torch.zeros_like(dc)
            dgates[t] = torch.cat([dc * g * i * (1 - i), dgf, dc * i * (1 - g * g), dh * tc * o * (1 - o)], 1)
            dc = dc * f
            if t > 0:
                dh_next = conv2d_input(hs[t - 1].shape, weight, dgates[t], padding=pad)
        dxin = torch.stack(dgates, 1)
        if len(hs) > 1:  # one weight gradient for all steps: the state convolution's weights are shared over time
            h_prev = torch.stack(hs[:-1], 1).flatten(0, 1)
            dw = conv2d_weight(h_prev, weight.shape, dxin[:, 1:].flatten(0, 1), padding=pad)
        else:
            dw = torch.zeros_like(weight)
        return dxin, dw


def fused_forward(layer: ConvRecurrent, x: Tensor) -> Tensor:
    """``layer(x)[0]`` for a ``cell="lstm"`` layer without peepholes, through :class:`LSTMSequence`."""
    b = x.shape[0]
    xin = rearrange(layer.cell.input_conv(rearrange(x, "b c t h w -> (b t) c h w")), "(b t) g h w -> b t g h w", b=b)
    return rearrange(LSTMSequence.apply(xin, layer.cell.state_conv.weight), "b t c h w -> b c t h w")


def _train_step(which: str, pkg: ConvRecurrent, ref: ConvLSTMRef, x: Tensor):
    def run() -> None:
        pkg.zero_grad(set_to_none=True)
        ref.zero_grad(set_to_none=True)
        out = ref(x)[0] if which == "ref" else pkg(x)[0] if which == "pkg" else fused_forward(pkg, x)
        out.square().mean().backward()
    return run


def main(argv: list[str] | None = None) -> None:
    ap = timing_parser(__doc__)
    add_layer_configs(ap)
    args = parse(ap, argv)
    torch.manual_seed(0)
    print(f"{args.stat} of {args.iters} calls, threads {torch.get_num_threads()}, torch {torch.__version__}; forward+backward ms")
    print("| B | C_in | C_h | H=W | T | reference | package | prototype | reference / prototype |")
    print("|---|---|---|---|---|---|---|---|---|")
    for b, cin, ch, size, t in layer_configs(args):
        pkg = ConvRecurrent(cin, ch, cell="lstm")
        ref = ConvLSTMRef(cin, ch).load_from_package(pkg)
        x = torch.randn(b, cin, t, size, size, requires_grad=True)
        got, want = fused_forward(pkg, x), pkg(x)[0]
        torch.testing.assert_close(got, want)
        for g1, g2 in zip(torch.autograd.grad(got.square().sum(), [x, *pkg.parameters()]),
                          torch.autograd.grad(want.square().sum(), [x, *pkg.parameters()])):
            torch.testing.assert_close(g1, g2, atol=1e-4, rtol=1e-3)  # the hand-written backward is right
        res = {name: stat_ms(time_fn(_train_step(name, pkg, ref, x.detach()), iters=args.iters), args)
               for name in ("ref", "pkg", "proto")}
        print(f"| {b} | {cin} | {ch} | {size} | {t} | {res['ref']:.1f} | {res['pkg']:.1f} | {res['proto']:.1f} | "
              f"{res['ref'] / res['proto']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
