"""One streaming step of a causal model with its state as flat, named tensors: ``forward(frames, *state) ->
(logits, *next_state)``. The time loop stays outside, so the step has fixed shapes: what the ONNX export writes
(:mod:`.export`) and what a CUDA graph captures (:mod:`.stream_runner`). The frame count ``steps`` is a tensor and the
causal stem's first-frame rule a ``torch.where``, so nothing in the step branches on the state's values.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten_with_path, tree_unflatten

from vidrcnn.errors import ExportError
from vidrcnn.models.cnn_lstm import CNNLSTM
from vidrcnn.models.rcn import RCN, StreamState


def is_streamable(model: nn.Module) -> bool:
    return isinstance(model, (RCN, CNNLSTM))


class StreamStep(nn.Module):
    """One streaming step of a causal model with a flat, tensor-only state (module doc): ``forward(frames,
    *state) -> (logits, *next_state)`` in the order of :attr:`names`; :meth:`initial_state` gives the zeros."""

    def __init__(self, model: nn.Module, *, batch: int = 1, frame_size: tuple[int, int] = (32, 32)):
        super().__init__()
        if not is_streamable(model):
            raise ExportError(f"{type(model).__name__} has no streaming step to export (not an RCN or a CNN+LSTM)")
        self.model = model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():  # one frame through: the state's structure and shapes
            _, state = model.stream(torch.zeros(batch, 3, 1, *frame_size, device=device))
        named, self._layer_spec = self._to_named(state, spec=True)
        self.names = list(named)
        self.shapes = {n: tuple(t.shape) for n, t in named.items()}
        self.dtypes = {n: t.dtype for n, t in named.items()}

    def initial_state(self, device: torch.device | str = "cpu") -> list[Tensor]:
        return [torch.zeros(self.shapes[n], dtype=self.dtypes[n], device=device) for n in self.names]

    def forward(self, frames: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        named = dict(zip(self.names, state, strict=True))
        logits, new = self.model.stream(frames, self._from_named(named, frames))
        out = self._to_named(new, steps=named["steps"] + frames.shape[2])
        return (logits, *(out[n] for n in self.names))

    def _to_named(self, state, *, spec: bool = False, steps: Tensor | None = None):
        named: dict[str, Tensor] = {}
        layer_spec = None
        if isinstance(self.model, RCN):
            leaves, layer_spec = tree_flatten_with_path(state.layers)
            for path, leaf in leaves:
                named["layers." + ".".join(str(k.idx) for k in path)] = leaf
            if state.pooled_sum is not None:
                named["pooled_sum"] = state.pooled_sum
            stem = state.stem
        else:
            (h, c), stem = state if self.model.stem is not None else (state, None)
            named["lstm.h"], named["lstm.c"] = h, c
        if stem is not None:
            named["stem"] = stem
        named["steps"] = steps if steps is not None else torch.full((1,), int(getattr(state, "steps", 1)))
        return (named, layer_spec) if spec else named

    def _from_named(self, named: Mapping[str, Tensor], frames: Tensor):
        steps = named["steps"]
        stem = named.get("stem")
        if stem is not None:  # before the first frame the causal stem repeats that frame (CausalStem.forward)
            stem = torch.where(steps.view(1, 1, 1, 1, 1) > 0, stem, frames[:, :, :1].expand_as(stem))
        if isinstance(self.model, RCN):
            layers = tree_unflatten([named[n] for n in self.names if n.startswith("layers.")], self._layer_spec)
            return StreamState(layers, named.get("pooled_sum"), steps, stem)
        lstm = (named["lstm.h"], named["lstm.c"])
        return (lstm, stem) if self.model.stem is not None else lstm
