"""A recurrent conv cell whose time axis is computed by a parallel scan: convolutional minGRU.

minGRU (Feng et al., "Were RNNs all we needed?", 2024) keeps the GRU's gated update but lets the gate and the
candidate depend on the input only::

    z_t  = sigmoid(W_z * x_t)
    h~_t = g(W_h * x_t)              g(v) = v + 0.5 for v >= 0, sigmoid(v) below: positive, continuous
    h_t  = (1 - z_t) . h_{t-1} + z_t . h~_t

``*`` is a 2-D convolution, as in ConvS5 (Smith et al., 2023): spatial mixing happens in the per-step input
convolution and by stacking layers, never inside the recurrence. The recurrence is linear in ``h`` with
coefficients known for all ``t`` at once, so the whole clip is one batched convolution plus a scan along T
(:mod:`vidrcnn.layers.scan`) instead of T dependent convolutions. ``g`` keeps ``h~`` positive so the log-space scan
applies (the minGRU paper's choice); the sequential and Hillis-Steele evaluations use the same ``g``, so every mode
gives the same outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vidrcnn.layers.recurrent_cell import CellOptions, RecurrentCell, chrono_bias
from vidrcnn.layers.scan import SCAN_METHODS, scan_hillis, scan_log, scan_sequential, scan_steps


def g(v: Tensor) -> Tensor:
    """minGRU's positive activation for the candidate state: ``v + 0.5`` for ``v >= 0``, ``sigmoid(v)`` below.

    That is also ``max(v + 0.5, sigmoid(v))``: both pieces meet at 0 and the line lies above the sigmoid for
    ``v > 0`` (the sigmoid's slope is at most 1/4 there) and below it for ``v < 0``. Without autograd the maximum is
    used, one pass over the data fewer than the mask and select (a layer's forward 1.15-1.26x faster on
    CPU, docs/guide/performance.md); with autograd the select, whose backward is the cheaper of the two.
    """
    if torch.is_grad_enabled() and v.requires_grad:
        return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))
    return torch.maximum(v + 0.5, torch.sigmoid(v))


def log_g(v: Tensor) -> Tensor:
    """``log(g(v))`` without forming ``g`` first (so no ``log`` of a sigmoid that underflowed)."""
    return torch.where(v >= 0, torch.log(F.relu(v) + 0.5), -F.softplus(-v))


class MinGRUCell(RecurrentCell):
    """Convolutional minGRU. ``input_conv`` holds ``[W_z; W_h]`` and their biases; there is no state convolution.

    ``scan`` picks how :meth:`forward_sequence` runs the time axis: ``"log"`` (Heinsen's log-space scan),
    ``"hillis"`` (Hillis-Steele, ``ceil(log2 T)`` steps), ``"sequential"`` (a loop of element-wise updates), or
    ``"auto"``: ``log`` on GPU, ``sequential`` on CPU, where each loop step is already one vectorised element-wise
    pass over ``B*C*H*W`` values and the scans' extra work (``exp``/``log``, ``T log T`` terms) costs more than the
    loop (docs/guide/performance.md). :meth:`step` is the streaming form; all give the same outputs.
    """

    num_gates = 2

    option_names = (*RecurrentCell.option_names, "chrono")

    def __init__(self, in_channels: int, hidden_channels: int, options: CellOptions | None = None, *,
                 scan: str = "auto", **kwargs):
        # No state convolution, so ``kernel_size`` is the input convolution's unless ``input_kernel_size`` is given,
        # and ``preact_norm`` normalises the input pre-activations only.
        super().__init__(in_channels, hidden_channels, options, **kwargs)
        if self.options.chrono is not None:  # z is the share of the new candidate, as in the GRU
            self.input_bias(0).copy_(-chrono_bias(hidden_channels, self.options.chrono))
        if scan != "auto" and scan not in SCAN_METHODS:
            raise ValueError(f"scan must be 'auto' or one of {SCAN_METHODS}, got {scan!r}")
        self.scan = scan

    def scan_method(self, device: torch.device | None = None) -> str:
        """The evaluation :meth:`forward_sequence` uses on ``device`` (default: where the weights are)."""
        if self.scan != "auto":
            return self.scan
        device = device or self.input_conv.weight.device
        return "log" if device.type == "cuda" else "sequential"

    def critical_path(self, num_steps: int) -> int:
        """Dependent steps along time for a clip of ``num_steps`` frames (for the profiler)."""
        return scan_steps(num_steps, self.scan_method())

    def step(self, xin_t: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        k_z, k_h = xin_t.chunk(2, dim=1)
        z, h_tilde = torch.sigmoid(k_z), g(k_h)
        h = z * h_tilde if state is None else torch.lerp(state, h_tilde, z)  # (1 - z) h + z h~
        return h, h

    def forward_sequence(self, xin: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``xin`` ``(B, T, 2C, H, W)`` -> ``((B, T, C, H, W), h_T)`` with no convolution inside the time loop."""
        k_z, k_h = xin.chunk(2, dim=2)
        method = self.scan_method(xin.device)
        if method == "log":
            # log(1 - z) = -softplus(k), log z = -softplus(-k): exact in log space, no 1 - sigmoid cancellation.
            h = scan_log(-F.softplus(k_z), -F.softplus(-k_z) + log_g(k_h), state, dim=1)
        else:
            z = torch.sigmoid(k_z)
            scan = scan_hillis if method == "hillis" else scan_sequential
            h = scan(1 - z, z * g(k_h), state, dim=1)
        return h, h[:, -1]
