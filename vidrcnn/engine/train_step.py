"""One training step: the forward pass and its loss (:func:`forward_loss`), then the update from that loss
(:func:`update`); and, with ``train.cuda_graph``, :class:`GraphedStep`, the two captured as one CUDA graph and
replayed for every batch of the captured shape, so that a recurrent model's hundreds of small kernels per step
(forward, backward and the optimiser's) launch as one.

What a captured step needs, and why (PyTorch's "whole-network capture"): the optimiser keeps its step count and
learning rate on the GPU (``AdamW(capturable=True)``, the learning rate a tensor that :func:`set_lr` fills in place),
autocast does not cache its casts (``cache_enabled=False``), and nothing in the step waits for the host: so no fp16
grad scaler (it checks for infinities on the host; bf16 needs none) and no DDP (its buckets need their own warm-up).
The first steps run eagerly on a side stream (the optimiser's state is created there, cuDNN picks its algorithms);
then the next batch's step is captured and replayed. A batch of another shape (a ragged last batch, a batch
Mixup turned into soft targets) runs eagerly, on the same weights and optimiser state.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidrcnn.engine.cuda_graphs import capture_cuda_graph
from vidrcnn.engine.state import TrainState

log = logging.getLogger(__name__)


def clip_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of clip logits ``(B, K)``, or of per-step logits ``(B, T, K)`` (a model that puts its loss on
    every step in training, e.g. ``head="steps"``) averaged over all steps, each step with the clip's target.

    ``targets``: labels ``(B,)``, or soft targets ``(B, K)`` (Mixup/CutMix), which label smoothing smooths too."""
    if logits.dim() == 3:
        t = logits.shape[1]
        return F.cross_entropy(logits.flatten(0, 1), targets.repeat_interleave(t, dim=0),
                               label_smoothing=label_smoothing)
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)


def forward_loss(s: TrainState, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """The logits of ``x`` and their loss against ``y``, under the run's autocast."""
    with s.autocast:
        logits = s.trained(x)
        loss = clip_loss(logits.float(), y, s.label_smoothing)
    return logits, loss


def update(s: TrainState, loss: Tensor) -> None:
    """Backward from ``loss``, gradient clipping (``s.clip_grad``), the optimiser's step, through the grad scaler
    (a no-op unless fp16)."""
    s.optimizer.zero_grad(set_to_none=True)
    s.scaler.scale(loss).backward()
    if s.clip_grad > 0:
        s.scaler.unscale_(s.optimizer)
        nn.utils.clip_grad_norm_(s.model.parameters(), s.clip_grad)
    s.scaler.step(s.optimizer)
    s.scaler.update()


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate: in place where it is a tensor (a captured step reads it from the GPU)."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


class GraphedStep:
    """``step(x, y) -> (logits, loss)``: forward, loss and update in one, as a CUDA graph once ``warmup`` eager steps
    have run (see the module docstring). The returned tensors are copies, taken after the update.

    ``capture(fn, device)`` is :func:`~vidrcnn.engine.cuda_graphs.capture_cuda_graph` without its warm-up; a test
    passes its own to run this logic on the CPU.
    """

    def __init__(self, state: TrainState, *, warmup: int = 3,
                 capture: Callable[[Callable[[], tuple], torch.device], tuple] | None = None):
        self.state, self.warmup = state, warmup
        self.capture = capture or (lambda fn, device: capture_cuda_graph(fn, device, warmup=0))
        self.eager_steps = 0
        self.graph = None
        self.key: tuple | None = None
        self.static: tuple[Tensor, Tensor, Tensor, Tensor] | None = None  # input, target, logits, loss
        self.failed = False

    def _eager(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        s = self.state
        # Before the capture, on a side stream as PyTorch's recipe warms up: the optimiser's state is made there.
        side = torch.cuda.Stream(s.device) if s.device.type == "cuda" and self.graph is None else None
        if side is not None:
            side.wait_stream(torch.cuda.current_stream(s.device))
        with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
            logits, loss = forward_loss(s, x, y)
            update(s, loss)
        if side is not None:
            torch.cuda.current_stream(s.device).wait_stream(side)
        self.eager_steps += 1
        return logits.detach(), loss.detach()

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        key = (tuple(x.shape), x.dtype, tuple(y.shape), y.dtype)
        if self.graph is None and not self.failed and self.eager_steps >= self.warmup:
            static_x, static_y = x.clone(), y.clone()

            def step() -> tuple[Tensor, Tensor]:
                logits, loss = forward_loss(self.state, static_x, static_y)
                update(self.state, loss)
                return logits, loss

            try:
                self.graph, (logits, loss) = self.capture(step, self.state.device)
            except RuntimeError as exc:  # an operation that waits for the host cannot be captured
                log.warning("capturing the training step failed (%s); training eagerly",
                            str(exc).splitlines()[0])
                self.failed = True
            else:
                self.key, self.static = key, (static_x, static_y, logits, loss)
        if self.graph is None or key != self.key:
            return self._eager(x, y)
        static_x, static_y, logits, loss = self.static
        static_x.copy_(x)
        static_y.copy_(y)
        self.graph.replay()
        return logits.detach().clone(), loss.detach().clone()
