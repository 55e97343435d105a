"""CUDA graphs: a call captured once and replayed, so that a model of many small kernels (a recurrent step is tens of
them) pays one launch instead of one per kernel. :func:`capture_cuda_graph` is PyTorch's recipe
(``torch.cuda.graph``); :class:`GraphedForward` replays a model's forward pass per input shape (the test clips of
tools/test.py, ``eval.cuda_graph``); ``vidrcnn.inference.stream_runner`` replays a streamed step with it.

A graph replays the very kernels it captured on the very buffers it captured them with: the input is copied into a
static buffer before each replay, and the output buffer is overwritten by the next one. A graph holds one shape, so
a varying shape means another capture; where shapes vary without bound, graphs do not pay and stay off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)
T = TypeVar("T")


def capture_cuda_graph(fn: Callable[[], T], device: torch.device | str, *, warmup: int = 3
                       ) -> tuple[torch.cuda.CUDAGraph, T]:
    """``fn`` (reading and writing only tensors that stay in place) captured as a CUDA graph, PyTorch's recipe: run
    ``warmup`` times on a side stream (cuDNN picks its algorithms there, not during the capture), then capture. Returns
    the graph and ``fn``'s output, whose tensors every ``graph.replay()`` refreshes."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph, out


class GraphedForward(nn.Module):
    """``model``'s forward pass (without gradients) replayed as a CUDA graph: one graph per input shape, captured on
    that shape's first call, for at most ``max_shapes`` shapes (a test set's full batches and its ragged last one are
    two); any other shape runs eagerly. Each call returns a copy of the graph's output, which the next replay
    overwrites. A capture that fails (an operation a graph cannot hold) leaves the model eager, with a warning.

    ``capture`` is :func:`capture_cuda_graph`; a test passes its own to run this logic on the CPU.
    """

    def __init__(self, model: nn.Module, *, max_shapes: int = 4,
                 capture: Callable[[Callable[[], Tensor], torch.device], tuple] = capture_cuda_graph):
        super().__init__()
        self.model, self.max_shapes, self.capture = model, max_shapes, capture
        self.graphs: dict[tuple, tuple[Tensor, object, Tensor]] = {}  # shape -> (static input, graph, output)
        self.failed = False

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            raise RuntimeError("GraphedForward replays a forward pass without gradients: call it under "
                               "torch.no_grad() or torch.inference_mode()")
        key = (tuple(x.shape), x.dtype, x.device)
        entry = self.graphs.get(key)
        if entry is None:
            if self.failed or len(self.graphs) >= self.max_shapes:
                return self.model(x)
            static = x.clone()
            try:
                graph, out = self.capture(lambda: self.model(static), x.device)
            except RuntimeError as exc:  # e.g. an operation that syncs with the host, which a capture refuses
                log.warning("CUDA graph capture failed (%s); running the model eagerly", str(exc).splitlines()[0])
                self.failed = True
                return self.model(x)
            entry = self.graphs[key] = (static, graph, out)
        static, graph, out = entry
        static.copy_(x)
        graph.replay()
        return out.clone()
