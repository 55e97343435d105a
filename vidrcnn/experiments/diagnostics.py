"""Why a recurrent convolutional network learns slowly: what flows forward and backward through its layers and time.

Four measurements on one batch, for any :class:`~vidrcnn.models.rcn.RCN`
(``python -m vidrcnn.experiments.diagnostics_report`` runs them before and after a short training and writes
docs/reports/why_rcns_learned_slowly.md):

- :func:`activation_rms`: root mean square of the stem's and each recurrent layer's output (a signal that shrinks
  layer after layer leaves the classifier nothing to read, and the state terms nothing to add);
- :func:`grad_per_step`: the norm of the loss gradient reaching the stem's and each layer's output at each time
  step (a last-step readout whose gradient dies out backwards in time trains only on the last frames);
- :func:`gate_saturation`: the share of sigmoid outputs outside [0.05, 0.95] and tanh outputs outside
  [-0.95, 0.95], per recurrent layer (saturated units pass no gradient);
- :func:`memory`: how much of frame t's stem output still reaches the top layer's last-step features, as the norm
  of their Jacobian relative to the last frame's (1.0 at t = T-1; 1e-3 at t means that frame is forgotten).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

SATURATED = 0.95  # |tanh| above this, sigmoid above this or below 1 - this: less than ~10% of the peak gradient


@contextmanager
def _capture(model: nn.Module, retain_grad: bool = False) -> Iterator[dict[str, Tensor]]:
    """Record the stem's output and each recurrent layer's output ``(B, C, T, H, W)`` during a forward pass."""
    outputs: dict[str, Tensor] = {}

    def hook(name: str):
        def fn(_module, _inputs, out):
            y = out[0] if isinstance(out, tuple) else out
            if retain_grad and y.requires_grad:
                y.retain_grad()
            outputs[name] = y
        return fn

    handles = [model.stem.register_forward_hook(hook("stem"))]
    handles += [layer.register_forward_hook(hook(f"layer{i}")) for i, layer in enumerate(model.layers)]
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def activation_rms(model: nn.Module, x: Tensor) -> dict[str, float]:
    """RMS of the stem's and each recurrent layer's output over the batch ``x`` ``(B, C, T, H, W)``."""
    with _capture(model) as outputs:
        model(x)
    return {name: float(y.square().mean().sqrt()) for name, y in outputs.items()}


def grad_per_step(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, list[float]]:
    """Norm of d(cross-entropy)/d(output) at each time step, for the stem and each recurrent layer (batch sum)."""
    from vidrcnn.engine.train_step import clip_loss  # per-step logits (head="steps") too

    with _capture(model, retain_grad=True) as outputs:
        loss = clip_loss(model(x), y)
    model.zero_grad(set_to_none=True)
    loss.backward()
    grads = {name: out.grad for name, out in outputs.items()}
    model.zero_grad(set_to_none=True)
    return {name: [float(g[:, :, t].norm()) if g is not None else 0.0 for t in range(g.shape[2])]
            for name, g in grads.items()}


class _GateCounter(TorchFunctionMode):
    """Counts saturated outputs of ``torch.sigmoid`` and ``torch.tanh`` per currently running layer."""

    def __init__(self):
        super().__init__()
        self.layer: str | None = None
        self.counts: dict[str, dict[str, list[int]]] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        kind = {torch.sigmoid: "sigmoid", torch.tanh: "tanh", Tensor.sigmoid: "sigmoid", Tensor.tanh: "tanh"}.get(func)
        if kind is not None and self.layer is not None:
            if kind == "sigmoid":
                sat = (out > SATURATED) | (out < 1 - SATURATED)
            else:
                sat = out.abs() > SATURATED
            c = self.counts.setdefault(self.layer, {}).setdefault(kind, [0, 0])
            c[0] += int(sat.sum())
            c[1] += sat.numel()
        return out


@torch.no_grad()
def gate_saturation(model: nn.Module, x: Tensor) -> dict[str, dict[str, float]]:
    """Share of saturated sigmoid and tanh outputs inside each recurrent layer, ``{"layer0": {"sigmoid": ..}}``.

    Cells whose nonlinearities are not sigmoid or tanh (ReLU in ``rcl``) report nothing for them."""
    counter = _GateCounter()
    handles = []
    for i, layer in enumerate(model.layers):
        handles.append(layer.register_forward_pre_hook(lambda *_, name=f"layer{i}": setattr(counter, "layer", name)))
        handles.append(layer.register_forward_hook(lambda *_: setattr(counter, "layer", None)))
    try:
        with counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
    return {layer: {kind: n / max(total, 1) for kind, (n, total) in kinds.items()}
            for layer, kinds in counter.counts.items()}


def memory(model: nn.Module, x: Tensor, seed: int = 0) -> list[float]:
    """For each frame t, ``||d f / d stem_t|| / ||d f / d stem_{T-1}||`` where ``f`` is the top layer's pooled
    features at the last step projected on a fixed random direction: how much of frame t survives to the end."""
    with _capture(model) as outputs:
        pooled, _, _ = model.features(x)  # (B, T, C)
    direction = torch.randn(pooled.shape[-1], generator=torch.Generator().manual_seed(seed)).to(pooled)
    stem = outputs["stem"]
    (grad,) = torch.autograd.grad((pooled[:, -1] * direction).sum(), stem)
    norms = torch.stack([grad[:, :, t].norm() for t in range(grad.shape[2])])
    return (norms / norms[-1].clamp_min(1e-30)).tolist()


__all__ = ["SATURATED", "activation_rms", "gate_saturation", "grad_per_step", "memory"]
