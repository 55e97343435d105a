"""The package's ConvLSTM against the common concat-per-step ConvLSTM: forward and forward+backward latency.

Figures: docs/guide/performance.md, "What did not help on the CPU".

The common way of writing a ConvLSTM, as a yardstick for the package's layer.

Most public ConvLSTM layers concatenate the input and the hidden state and run ONE convolution per time step over
the concatenation (``conv([x_t, h_{t-1}]) -> i, f, o, g``), e.g. the widely copied ndrplz/ConvLSTM_pytorch. The
package's :class:`vidrcnn.layers.ConvRecurrent` with ``cell="lstm"`` computes the same function with the input
half of that convolution taken out of the time loop (one batched convolution over all ``B*T`` frames) and only
``conv(h_{t-1})`` left inside.

    python benchmarks/convlstm_reference.py [--threads 2] [--iters 10]

prints forward and forward+backward latency of both at the same configuration and the ratio reference/package.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vidrcnn.layers import ConvRecurrent
from vidrcnn.profiling import forward_backward, time_fn
from vidrcnn.profiling.bench_args import add_layer_configs, layer_configs, parse, stat_ms, timing_parser


class ConvLSTMCellRef(nn.Module):
    """One step: concatenate input and hidden state, one convolution, split into the four gates."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3, bias: bool = True):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.conv = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size,
                              padding=kernel_size // 2, bias=bias)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h_cur, c_cur = state
        cc_i, cc_f, cc_g, cc_o = torch.split(self.conv(torch.cat([x, h_cur], dim=1)), self.hidden_channels, dim=1)
        c_next = torch.sigmoid(cc_f) * c_cur + torch.sigmoid(cc_i) * torch.tanh(cc_g)
        h_next = torch.sigmoid(cc_o) * torch.tanh(c_next)
        return h_next, c_next


class ConvLSTMRef(nn.Module):
    """One layer over ``(B, C, T, H, W)`` (the package's layout), looping over time and calling the cell."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        self.cell = ConvLSTMCellRef(in_channels, hidden_channels, kernel_size)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        b, _, t, h, w = x.shape
        state = (x.new_zeros(b, self.cell.hidden_channels, h, w), x.new_zeros(b, self.cell.hidden_channels, h, w))
        outs = []
        for i in range(t):
            state = self.cell(x[:, :, i], state)
            outs.append(state[0])
        return torch.stack(outs, dim=2), state

    @torch.no_grad()
    def load_from_package(self, layer: ConvRecurrent) -> ConvLSTMRef:
        """Copy the weights of a package LSTM layer (gate order i, f, c, o in both) so outputs can be compared."""
        cell = layer.cell
        self.cell.conv.weight.copy_(torch.cat([cell.input_conv.weight, cell.state_conv.weight], dim=1))
        self.cell.conv.bias.copy_(cell.input_conv.bias)
        return self


def legacy_loop(layer: ConvRecurrent) -> ConvRecurrent:
    """Give ``layer`` the time loop the package had before it was optimised (kept here to measure the change):
    ``xin[:, t]`` per step, whose backward writes each step's gradient into a zero tensor of the whole sequence
    (O(T^2) memory traffic), and a state convolution over the all-zero initial state (rnn, gru, lstm cells)."""
    cell = layer.cell

    def forward_sequence(xin: Tensor, state=None):
        if state is None:  # what the cells did: start from explicit zeros and convolve them
            state = cell.initial_state(xin[:, 0])
        outs = []
        for t in range(xin.shape[1]):
            h, state = cell.step(xin[:, t], state)
            outs.append(h)
        return torch.stack(outs, dim=1), state

    cell.forward_sequence = forward_sequence
    return layer


def main(argv: list[str] | None = None) -> None:
    ap = timing_parser(__doc__)
    add_layer_configs(ap)
    args = parse(ap, argv)
    torch.manual_seed(0)
    print(f"{args.stat} of {args.iters} calls, threads {torch.get_num_threads()}, torch {torch.__version__}")
    print("ratio = reference / package (> 1: the package is faster); old = the package's loop before optimising")
    print("| B | C_in | C_h | H=W | T | ref fwd ms | old fwd ms | pkg fwd ms | fwd ratio | ref fwd+bwd ms | "
          "old fwd+bwd ms | pkg fwd+bwd ms | fwd+bwd ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for b, cin, ch, size, t in layer_configs(args):
        pkg = ConvRecurrent(cin, ch, cell="lstm")
        ref = ConvLSTMRef(cin, ch).load_from_package(pkg)
        old = legacy_loop(ConvRecurrent(cin, ch, cell="lstm"))
        old.load_state_dict(pkg.state_dict())
        x = torch.randn(b, cin, t, size, size)
        with torch.no_grad():  # same function, or the comparison means nothing
            torch.testing.assert_close(pkg(x)[0], ref(x)[0], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(pkg(x)[0], old(x)[0], atol=1e-4, rtol=1e-4)
        res = {}
        for name, m in (("ref", ref), ("old", old), ("pkg", pkg)):
            with torch.no_grad():
                res[name, "fwd"] = stat_ms(time_fn(lambda m=m, x=x: m(x), iters=args.iters), args)
            res[name, "bwd"] = stat_ms(time_fn(forward_backward(m, x), iters=args.iters), args)
        print(f"| {b} | {cin} | {ch} | {size} | {t} | {res['ref', 'fwd']:.1f} | {res['old', 'fwd']:.1f} | "
              f"{res['pkg', 'fwd']:.1f} | {res['ref', 'fwd'] / res['pkg', 'fwd']:.2f}x | {res['ref', 'bwd']:.1f} | "
              f"{res['old', 'bwd']:.1f} | {res['pkg', 'bwd']:.1f} | {res['ref', 'bwd'] / res['pkg', 'bwd']:.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
