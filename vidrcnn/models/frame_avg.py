"""The control with no temporal modelling: a 2-D CNN scores every frame, the scores are averaged over time.

Any permutation of the frames gives the same logits, so it cannot tell a clip from its time reversal."""

from __future__ import annotations

import os
from collections.abc import Sequence

from einops import rearrange
from torch import Tensor, nn

from vidrcnn.models.backbones import frame_cnn
from vidrcnn.models.registry import register_model


class FrameAverage(nn.Module):
    """``frame_net`` ``(N, 3, H, W) -> (N, feature_dim)``, a linear classifier per frame, mean over time."""

    is_causal = False

    def __init__(self, *, frame_net: nn.Module, feature_dim: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.frame_net = frame_net
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(feature_dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        logits = self.fc(self.dropout(self.frame_net(rearrange(x, "b c t h w -> (b t) c h w"))))
        return rearrange(logits, "(b t) k -> b t k", b=b).mean(dim=1)


def _frame_avg(size: str, *, num_classes: int, stem: str, stem_weights, resnet_stage: int,
               dropout: float, stem_strides: Sequence[int] | None) -> FrameAverage:
    net, dim = frame_cnn(size, stem=stem, stem_weights=stem_weights, resnet_stage=resnet_stage,
                         stem_strides=stem_strides)
    return FrameAverage(frame_net=net, feature_dim=dim, num_classes=num_classes, dropout=dropout)


@register_model()
def frame_avg_s(*, num_classes: int = 101, stem: str = "small", stem_weights: str | os.PathLike | None = None,
                resnet_stage: int = 2, dropout: float = 0.0,
                stem_strides: Sequence[int] | None = None) -> FrameAverage:
    """Frame-average control for <= 64x64 frames."""
    return _frame_avg("s", num_classes=num_classes, stem=stem, stem_weights=stem_weights,
                      resnet_stage=resnet_stage, dropout=dropout, stem_strides=stem_strides)


@register_model()
def frame_avg_m(*, num_classes: int = 101, stem: str = "small", stem_weights: str | os.PathLike | None = None,
                resnet_stage: int = 2, dropout: float = 0.0,
                stem_strides: Sequence[int] | None = None) -> FrameAverage:
    """Frame-average control for 112x112 frames."""
    return _frame_avg("m", num_classes=num_classes, stem=stem, stem_weights=stem_weights,
                      resnet_stage=resnet_stage, dropout=dropout, stem_strides=stem_strides)
