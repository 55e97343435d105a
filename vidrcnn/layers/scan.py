"""Scans for the first-order linear recurrence ``h_t = a_t * h_{t-1} + b_t`` along one axis.

The recurrence is associative, ``(a1, b1) then (a2, b2) = (a1 * a2, a2 * b1 + b2)``, so it can be computed over the
whole time axis at once instead of step by step. Three evaluations, identical up to float rounding:

- ``sequential``: T dependent steps; what streaming uses, one frame at a time.
- ``hillis``: Hillis-Steele inclusive scan in linear space, ``ceil(log2 T)`` dependent steps of element-wise work on
  the full tensor; any sign of ``a`` and ``b``.
- ``log``: Heinsen's log-space scan (``cumsum`` + ``logcumsumexp``, "Efficient parallelization of a ubiquitous
  sequential computation", 2023), as in minGRU; needs ``b >= 0`` (it takes ``log b``). Each of its two scans has
  ``ceil(log2 T)`` depth when run in parallel (what a GPU kernel does; the CPU kernels loop along T).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SCAN_METHODS = ("sequential", "hillis", "log")


def _shift(x: Tensor, d: int, dim: int, fill: float) -> Tensor:
    """``x`` moved ``d`` places later along ``dim``; the first ``d`` places hold ``fill``."""
    head = torch.full_like(x.narrow(dim, 0, d), fill)
    return torch.cat([head, x.narrow(dim, 0, x.size(dim) - d)], dim)


def _add_initial(h: Tensor, cum_a: Tensor, h0: Tensor | None, dim: int) -> Tensor:
    # h_t = (prod_{s<=t} a_s) * h0 + (scan started from zero); h0 has no time axis.
    return h if h0 is None else h + cum_a * h0.unsqueeze(dim)


def scan_sequential(a: Tensor, b: Tensor, h0: Tensor | None = None, dim: int = 2) -> Tensor:
    """All ``h_t`` for ``t < T`` by T dependent steps. ``h0`` (``a`` without the time axis) defaults to zeros."""
    h = torch.zeros_like(b.select(dim, 0)) if h0 is None else h0
    out = []
    for a_t, b_t in zip(a.unbind(dim), b.unbind(dim)):
        h = a_t * h + b_t
        out.append(h)
    return torch.stack(out, dim)


def scan_hillis(a: Tensor, b: Tensor, h0: Tensor | None = None, dim: int = 2) -> Tensor:
    """All ``h_t`` by a Hillis-Steele scan: ``ceil(log2 T)`` dependent steps, each element-wise over all t."""
    a, b = torch.broadcast_tensors(a, b)
    d = 1
    while d < a.size(dim):
        # After this step position t holds the composition of the 2d steps ending at t.
        b = a * _shift(b, d, dim, 0.0) + b
        a = a * _shift(a, d, dim, 1.0)
        d *= 2
    return _add_initial(b, a, h0, dim)


def scan_log(log_a: Tensor, log_b: Tensor, h0: Tensor | None = None, dim: int = 2) -> Tensor:
    """All ``h_t`` from ``log a`` and ``log b`` (so ``b > 0``; ``log b = -inf`` means ``b = 0``), in log space.

    ``log h_t = A_t + logcumsumexp(log b - A)_t`` with ``A = cumsum(log a)``: no product of many small ``a`` is ever
    formed, so long sequences neither underflow nor lose precision. ``h0`` may have any sign; it is added linearly.
    """
    cum_log_a = torch.cumsum(log_a, dim)
    h = torch.exp(cum_log_a + torch.logcumsumexp(log_b - cum_log_a, dim))
    return _add_initial(h, torch.exp(cum_log_a), h0, dim)


def scan_steps(num_steps: int, method: str) -> int:
    """Dependent steps on the critical path of a scan of length ``num_steps`` (``log`` runs two scans in a row)."""
    if method not in SCAN_METHODS:
        raise ValueError(f"unknown scan method {method!r}; expected one of {SCAN_METHODS}")
    if num_steps <= 1:
        return num_steps
    depth = math.ceil(math.log2(num_steps))
    return {"sequential": num_steps, "hillis": depth, "log": 2 * depth}[method]
