"""The image RCNN of Liang & Hu (CVPR 2015), "Recurrent Convolutional Neural Network for Object Recognition".

Architecture (their CIFAR-10 network, K maps per layer, input 3x32x32)::

    conv 5x5, K maps (feed-forward, no recurrence) -> ReLU -> LRN -> max pool 3x3/2   32 -> 16 px
    RCL 2, RCL 3 (3x3 feed-forward and 3x3 recurrent kernels)                    16 px
    max pool 3x3/2                                                               16 -> 8 px
    RCL 4, RCL 5                                                                 8 px
    global max pool over space -> dropout -> linear (softmax in the loss)

Each RCL runs the ``rcl`` cell on the (static) output of the layer below: step 0 is feed-forward only
(``x(0) = LRN(ReLU(w_f * u + b))``, the zero state contributes nothing) and ``iterations`` recurrent steps follow
(their T = 3, so each RCL is a feed-forward subnetwork of depth T + 1 = 4); the next layer takes the last step's
output. So the "still image repeated" runs T + 1 = 4 steps of the cell from a zero state.

Parameter count (weights + biases, one bias per RCL since the feed-forward and recurrent convolutions are summed)::

    conv1     3*5*5*K + K
    4 RCLs    4 * (9*K*K [w_f] + 9*K*K [w_r] + K)
    linear    K*10 + 10
    K=96: 672,202 (0.67M)  K=128: 1,191,178 (1.19M)  K=160: 1,857,610 (1.86M)  -- their 0.67M, 1.19M, 1.86M

LRN (size K/8+1, alpha 0.001, beta 0.75) has no parameters; ``norm="bn"`` replaces it by BatchNorm (adds 2K
parameters per normalised layer). Whether their first layer is followed by LRN does not change the count; we apply
it, as in every RCL.

Inputs: an image batch ``(B, C, H, W)``; or a video ``(B, C, T, H, W)``, where each frame is classified as a still
image on its own and the clip logits are the mean of the frame logits (no temporal modelling: a frame model).
"""

from __future__ import annotations

from einops import rearrange
from torch import Tensor, nn

from vidrcnn.layers import ConvRecurrent
from vidrcnn.models.registry import register_model


class RCNN(nn.Module):
    """Liang & Hu's RCNN with ``width`` (K) maps per layer; see the module docstring."""

    is_causal = False

    def __init__(self, *, width: int, num_classes: int = 10, in_channels: int = 3, iterations: int = 3,
                 norm: str | None = "lrn", dropout: float = 0.5):
        super().__init__()
        if iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {iterations}")
        self.steps = iterations + 1
        self.conv1 = nn.Conv2d(in_channels, width, 5, padding=2)
        self.norm1 = (nn.LocalResponseNorm(width // 8 + 1, alpha=0.001, beta=0.75, k=1.0) if norm == "lrn"
                      else nn.BatchNorm2d(width) if norm == "bn" else nn.Identity())
        self.pool1 = nn.MaxPool2d(3, 2, padding=1)
        self.rcl2, self.rcl3, self.rcl4, self.rcl5 = (ConvRecurrent(width, width, cell="rcl", kernel_size=3, norm=norm)
                                                      for _ in range(4))
        self.pool2 = nn.MaxPool2d(3, 2, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width, num_classes)

    def forward_image(self, x: Tensor) -> Tensor:
        """Logits for an image batch ``(B, C, H, W)``."""
        y = self.pool1(self.norm1(self.conv1(x).relu()))
        y = self.rcl3.forward_static(self.rcl2.forward_static(y, self.steps), self.steps)
        y = self.pool2(y)
        y = self.rcl5.forward_static(self.rcl4.forward_static(y, self.steps), self.steps)
        y = y.amax(dim=(2, 3))  # global max pooling over space
        return self.fc(self.dropout(y))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            return self.forward_image(x)
        if x.dim() != 5:
            raise ValueError(f"RCNN expects (B, C, H, W) or (B, C, T, H, W), got shape {tuple(x.shape)}")
        b = x.shape[0]
        logits = self.forward_image(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(logits, "(b t) k -> b t k", b=b).mean(dim=1)


@register_model()
def rcnn_k96(*, num_classes: int = 10, iterations: int = 3, norm: str | None = "lrn", dropout: float = 0.5) -> RCNN:
    """Liang & Hu's RCNN-96 (0.67M parameters for 10 classes)."""
    return RCNN(width=96, num_classes=num_classes, iterations=iterations, norm=norm, dropout=dropout)


@register_model()
def rcnn_k128(*, num_classes: int = 10, iterations: int = 3, norm: str | None = "lrn", dropout: float = 0.5) -> RCNN:
    """Liang & Hu's RCNN-128 (1.19M parameters for 10 classes)."""
    return RCNN(width=128, num_classes=num_classes, iterations=iterations, norm=norm, dropout=dropout)


@register_model()
def rcnn_k160(*, num_classes: int = 10, iterations: int = 3, norm: str | None = "lrn", dropout: float = 0.5) -> RCNN:
    """Liang & Hu's RCNN-160 (1.86M parameters for 10 classes)."""
    return RCNN(width=160, num_classes=num_classes, iterations=iterations, norm=norm, dropout=dropout)
