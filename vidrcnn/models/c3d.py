"""A small C3D-style 3-D CNN (Tran et al. 2015: 3x3x3 convolutions throughout), trainable from scratch on CPU.

It sees the whole clip at once (temporal convolutions with padding and pooling look both ways), so it is not causal.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from vidrcnn.models.registry import register_model


def conv3d_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True))


class C3D(nn.Module):
    """Stages of 3x3x3 conv-BN-ReLU (``widths[i]``, ``convs[i]`` convolutions) each followed by max pooling with
    kernel ``pools[i]`` (``None``: no pooling), then global average pooling, dropout and a linear classifier."""

    is_causal = False

    def __init__(self, *, num_classes: int, widths: Sequence[int], convs: Sequence[int],
                 pools: Sequence[tuple[int, int, int] | None], in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for w, n, pool in zip(widths, convs, pools, strict=True):
            for _ in range(n):
                layers.append(conv3d_bn_relu(c, w))
                c = w
            if pool is not None:
                # ceil_mode keeps short clips (T < the total temporal stride) from pooling down to nothing.
                layers.append(nn.MaxPool3d(pool, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(self.pool(self.features(x)).flatten(1)))


@register_model()
def c3d_s(*, num_classes: int = 101, dropout: float = 0.0) -> C3D:
    """C3D-style network for 16 frames at <= 64x64."""
    return C3D(num_classes=num_classes, widths=(16, 32, 64, 128), convs=(1, 1, 1, 1),
               pools=((1, 2, 2), (2, 2, 2), (2, 2, 2), None), dropout=dropout)


@register_model()
def c3d_m(*, num_classes: int = 101, dropout: float = 0.0) -> C3D:
    """C3D-style network for 16 frames at 112x112 (C3D's layout, narrower: 32-64-128-256)."""
    return C3D(num_classes=num_classes, widths=(32, 64, 128, 256), convs=(1, 1, 2, 2),
               pools=((1, 2, 2), (2, 2, 2), (2, 2, 2), None), dropout=dropout)
