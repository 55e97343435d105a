"""The layer that runs any recurrent cell over time: ``out, state = layer(x, state)`` like :class:`torch.nn.GRU`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vidrcnn.layers.cells import get_cell
from vidrcnn.layers.recurrent_cell import RecurrentCell, State, stack_steps


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

    ``checkpoint_every=k`` (gradient checkpointing over time, training only): the input convolution over all frames
    and the time loop in chunks of ``k`` steps keep only their outputs and the state at each chunk's end; backward
    recomputes their insides one chunk at a time (:func:`recomputed`), so the loop's activations stored for backward
    are those of one chunk, not of all T steps. The gradients equal the plain backward's. Eval, ``torch.no_grad``
    and :meth:`forward_static` run as without it.
    """

    def __init__(self, in_channels: int, hidden_channels: int, *, cell: str | type[RecurrentCell] = "gru",
                 kernel_size: int = 3, input_kernel_size: int | None = None, batch_input_conv: bool = True,
                 checkpoint_every: int | None = None, **cell_kwargs):
        super().__init__()
        if checkpoint_every is not None and (checkpoint_every < 1 or not batch_input_conv):
            raise ValueError(f"checkpoint_every must be >= 1 and needs batch_input_conv=True, got {checkpoint_every}")
        self.cell = get_cell(cell)(in_channels, hidden_channels, kernel_size=kernel_size,
                                   input_kernel_size=input_kernel_size, **cell_kwargs)
        self.batch_input_conv = batch_input_conv
        self.checkpoint_every = checkpoint_every

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if x.dim() != 5:
            raise ValueError(f"ConvRecurrent expects (B, C, T, H, W), got shape {tuple(x.shape)}")
        cell = self.cell
        xp = None
        if cell.input_conv_past is not None:
            # The state also carries the input's last k - 1 frames (zeros before the first: zero padding in time).
            state, prev = state if state is not None else (None, x.new_zeros(x.shape[0], x.shape[1],
                                                                             cell.input_frames - 1, *x.shape[3:]))
            xp = torch.cat([prev, x], dim=2)  # (B, C_in, k - 1 + T, H, W)
        k = self.checkpoint_every if self.training and torch.is_grad_enabled() else None
        if k:
            xin = recomputed(self, self._project, x, xp)
            outs = []
            for chunk in xin.split(k, dim=1):  # each chunk's insides recomputed in backward, from its first state
                h, state = recomputed(cell, cell.forward_sequence, chunk, state)
                outs.append(h)
            out = torch.cat(outs, dim=1)
        elif self.batch_input_conv:
            out, state = cell.forward_sequence(self._project(x, xp), state)  # (B, T, C, H, W)
        else:
            past = None if xp is None else cell.input_conv_past(xp[:, :, :-1])
            outs = []
            for t, x_t in enumerate(x.unbind(2)):  # unbind: one stack in backward instead of T full-size zero fills
                h, state = cell.step(cell.project_input(x_t, None if past is None else past[:, :, t]), state)
                outs.append(h)
            out = stack_steps(outs)
        if xp is not None:
            state = (state, xp[:, :, xp.shape[2] - (cell.input_frames - 1):])
        return rearrange(out, "b t c h w -> b c t h w"), state

    def _project(self, x: Tensor, xp: Tensor | None) -> Tensor:
        """The input convolution of every frame at once: ``(B, C_in, T, H, W) -> (B, T, G*C, H, W)``; ``xp`` is the
        input with its k - 1 past frames in front (``input_frames=k > 1``), else None."""
        cell = self.cell
        fold = None
        if xp is not None:
            past = cell.input_conv_past(xp[:, :, :-1])  # (B, G*C, T, H, W): frames t-k+1 .. t-1 for each t
            fold = rearrange(past, "b g t h w -> (b t) g h w")
        xin = cell.project_input(rearrange(x, "b c t h w -> (b t) c h w"), fold)
        return rearrange(xin, "(b t) g h w -> b t g h w", b=x.shape[0])

    def forward_static(self, u: Tensor, steps: int) -> Tensor:
        """Iterate the cell ``steps`` times on one still input ``u`` ``(B, C_in, H, W)`` from a zero state and
        return the last output ``(B, C_hidden, H, W)``. The input convolution runs once (the input never changes)."""
        if self.cell.input_conv_past is not None:
            raise ValueError("forward_static needs input_frames=1: a still input has no past frames of its own")
        xin = self.cell.project_input(u)
        out, _ = self.cell.forward_sequence(xin.unsqueeze(1).expand(-1, steps, -1, -1, -1), None)
        return out[:, -1]


@contextlib.contextmanager
def _buffers_kept(module: nn.Module) -> Iterator[None]:
    """Leave ``module``'s buffers as they were on entry (a recomputation must not update BatchNorm statistics)."""
    saved = [(buf, buf.clone()) for buf in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


def recomputed(module: nn.Module, fn: Callable, *args):
    """``fn(*args)`` (which runs ``module``) under gradient checkpointing: only its inputs and outputs are kept for
    backward, which runs it again (``torch.utils.checkpoint``, non-reentrant, with the RNG state of the forward).
    The second run sees the same inputs, so in training BatchNorm normalises with the same batch statistics, and it
    leaves the running statistics as the forward left them: they are updated once per step, as without it."""
    return checkpoint(fn, *args, use_reentrant=False,
                      context_fn=lambda: (contextlib.nullcontext(), _buffers_kept(module)))
