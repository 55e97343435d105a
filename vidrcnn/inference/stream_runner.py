"""How a causal model is stepped through a stream, in one of three modes (:data:`STEP_MODES`):

- ``"chunk"``: ``model.stream`` on each decoded chunk, the state carried between calls (the CPU's default: the
  input convolution runs once for the whole chunk).
- ``"frame"``: one frame at a time through :class:`~vidrcnn.inference.stream_step.StreamStep`, with the input and
  the state in fixed buffers, eagerly.
- ``"graph"``: the same step captured once as a CUDA graph and replayed for every frame (the default on CUDA).

Why graphs: a recurrent step is tens of small kernels (a ConvGRU step about 45), so on a GPU launching them costs
more than running them. Replaying a captured graph launches the whole step at once. On an H200, one streamed
rcn_gru_m frame took 2.00 ms eager and 0.26 ms as a hand-captured graph (the GPU issue's table).

The capture follows PyTorch's recipe (``torch.cuda.graph``): warm up on a side stream, capture one step that reads
the static frame and state buffers and writes the next state back into them, then copy each new frame into the
frame buffer and replay. A graph is captured for one shape (batch, frame size): K streams stepped together are a
batch of K, started together. All three modes give the same logits within float tolerance (tests run ``"chunk"``
against ``"frame"`` on the CPU; ``"graph"`` runs only on CUDA).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from vidrcnn.engine.cuda_graphs import capture_cuda_graph

log = logging.getLogger(__name__)

STEP_MODES = ("chunk", "frame", "graph")


def default_step_mode(device: torch.device | str) -> str:
    """``"graph"`` on CUDA, else ``"chunk"``."""
    return "graph" if torch.device(device).type == "cuda" else "chunk"


class ChunkStepper:
    """``model.stream`` on whatever frames come, carrying the state: ``stepper(x (B, C, s, H, W)) -> (B, s, K)``."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.state = None

    def __call__(self, x: Tensor) -> Tensor:
        logits, self.state = self.model.stream(x, self.state)
        return logits


class StreamRunner:
    """One frame at a time with the input and the state in fixed buffers; on CUDA (``graph=True``) the step is
    captured as a CUDA graph on the first call and replayed after. ``runner(x (B, C, s, H, W)) -> (B, s, K)``: the
    ``s`` frames are stepped in turn; every call must have the first call's batch and frame size."""

    def __init__(self, model: nn.Module, *, graph: bool, warmup: int = 3):
        device = next(model.parameters()).device
        if graph and device.type != "cuda":
            raise ValueError(f"a CUDA graph needs the model on a CUDA device, not {device.type}: use the 'frame' "
                             "or 'chunk' step mode")
        self.model, self.device, self.graph, self.warmup = model, device, graph, warmup
        self._step = None  # a StreamStep, built on the first call (its shapes are the first frame's)
        self._cuda_graph: torch.cuda.CUDAGraph | None = None

    def _build(self, frame: Tensor) -> None:
        # Imported here: the ONNX runner imports this module and must not load the model code (tests/test_export.py).
        from vidrcnn.inference.stream_step import StreamStep

        batch, _, _, height, width = frame.shape
        self._step = StreamStep(self.model, batch=batch, frame_size=(height, width))
        self._initial = self._step.initial_state(self.device)
        self._state = [s.clone() for s in self._initial]
        self._frame = torch.zeros_like(frame, device=self.device)
        if self.graph:
            try:
                self._capture()
            except RuntimeError as exc:  # a model the capture cannot take: the same step, eagerly
                log.warning("CUDA graph capture of %s failed (%s): stepping it eagerly",
                            type(self.model).__name__, str(exc).splitlines()[0])
                self._cuda_graph = None
                self.reset()

    def _capture(self) -> None:
        def step() -> Tensor:
            logits, *new = self._step(self._frame, *self._state)
            for buffer, value in zip(self._state, new, strict=True):
                buffer.copy_(value)  # in the graph: the next replay reads the state this one wrote
            return logits

        self._cuda_graph, self._logits = capture_cuda_graph(step, self.device, warmup=self.warmup)
        self.reset()  # the warm-up stepped the state

    def reset(self) -> None:
        """Back to the state before the first frame."""
        if self._step is not None:
            for buffer, value in zip(self._state, self._initial, strict=True):
                buffer.copy_(value)

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        if self._step is None:
            self._build(x[:, :, :1])
        out = []
        for i in range(x.shape[2]):
            self._frame.copy_(x[:, :, i : i + 1])
            if self._cuda_graph is not None:
                self._cuda_graph.replay()
                out.append(self._logits.clone())
                continue
            logits, *new = self._step(self._frame, *self._state)
            for buffer, value in zip(self._state, new, strict=True):
                buffer.copy_(value)
            out.append(logits)
        return torch.cat(out, 1)


def make_stepper(model: nn.Module, mode: str | None, device: torch.device | str) -> ChunkStepper | StreamRunner:
    """A stepper of ``model`` (on ``device``) in ``mode``; None: :func:`default_step_mode` of ``device``."""
    mode = mode or default_step_mode(device)
    if mode not in STEP_MODES:
        raise ValueError(f"unknown step mode {mode!r}; choose one of {', '.join(STEP_MODES)}")
    return ChunkStepper(model) if mode == "chunk" else StreamRunner(model, graph=mode == "graph")


__all__ = ["STEP_MODES", "ChunkStepper", "StreamRunner", "default_step_mode", "make_stepper"]
