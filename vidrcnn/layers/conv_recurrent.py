"""The layer that runs any recurrent cell over time: ``out, state = layer(x, state)`` like :class:`torch.nn.GRU`."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from vidrcnn.layers.cells import RecurrentCell, State, get_cell


class ConvRecurrent(nn.Module):
    """A recurrent convolutional layer over a video ``(B, C_in, T, H, W)``.

    Weights are shared over time and sequences may have any length. ``cell`` is a name in
    :data:`vidrcnn.layers.cells.CELLS` or a :class:`RecurrentCell` subclass; extra keyword arguments go to the cell
    (e.g. ``norm="bn"`` for ``rcl``, ``peephole=True`` for ``lstm``).

    With ``batch_input_conv=True`` (default) the input convolution, which does not depend on the state, runs once
    over all ``B*T`` frames and only the state convolution stays in the time loop. ``batch_input_conv=False`` is the
    plain step-by-step evaluation (input conv inside the loop), kept to compare against; both give the same result.

    ``forward(x, state=None) -> (out, state)``: ``out`` is ``(B, C_hidden, T, H, W)``, the hidden output at every
    step; ``state`` is the cell state after the last step, to pass back in for the next chunk of the same videos
    (with ``input_frames=k > 1``: the pair ``(cell state, the input's last k - 1 frames)``).
    """

    def __init__(self, in_channels: int, hidden_channels: int, *, cell: str | type[RecurrentCell] = "gru",
                 kernel_size: int = 3, input_kernel_size: int | None = None, batch_input_conv: bool = True,
                 **cell_kwargs):
        super().__init__()
        self.cell = get_cell(cell)(in_channels, hidden_channels, kernel_size=kernel_size,
                                   input_kernel_size=input_kernel_size, **cell_kwargs)
        self.batch_input_conv = batch_input_conv

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if x.dim() != 5:
            raise ValueError(f"ConvRecurrent expects (B, C, T, H, W), got shape {tuple(x.shape)}")
        b = x.shape[0]
        cell = self.cell
        past = None
        if cell.input_conv_past is not None:
            # The state also carries the input's last k - 1 frames (zeros before the first: zero padding in time).
            state, prev = state if state is not None else (None, x.new_zeros(b, x.shape[1], cell.input_frames - 1,
                                                                             *x.shape[3:]))
            xp = torch.cat([prev, x], dim=2)  # (B, C_in, k - 1 + T, H, W)
            past = cell.input_conv_past(xp[:, :, :-1])  # (B, G*C, T, H, W): frames t-k+1 .. t-1 for each t
        if self.batch_input_conv:
            fold = None if past is None else rearrange(past, "b g t h w -> (b t) g h w")
            xin = cell.project_input(rearrange(x, "b c t h w -> (b t) c h w"), fold)
            xin = rearrange(xin, "(b t) g h w -> b t g h w", b=b)
            out, state = cell.forward_sequence(xin, state)  # (B, T, C, H, W)
        else:
            outs = []
            for t, x_t in enumerate(x.unbind(2)):  # unbind: one stack in backward instead of T full-size zero fills
                h, state = cell.step(cell.project_input(x_t, None if past is None else past[:, :, t]), state)
                outs.append(h)
            out = torch.stack(outs, dim=1)
        if past is not None:
            state = (state, xp[:, :, xp.shape[2] - (cell.input_frames - 1):])
        return rearrange(out, "b t c h w -> b c t h w"), state

    def forward_static(self, u: Tensor, steps: int) -> Tensor:
        """Iterate the cell ``steps`` times on one still input ``u`` ``(B, C_in, H, W)`` from a zero state and
        return the last output ``(B, C_hidden, H, W)``. The input convolution runs once (the input never changes)."""
        if self.cell.input_conv_past is not None:
            raise ValueError("forward_static needs input_frames=1: a still input has no past frames of its own")
        xin = self.cell.project_input(u)
        out, _ = self.cell.forward_sequence(xin.unsqueeze(1).expand(-1, steps, -1, -1, -1), None)
        return out[:, -1]
