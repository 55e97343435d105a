"""Apply a 2-D module to every frame of a video independently."""

from __future__ import annotations

from einops import rearrange
from torch import Tensor, nn


class PerFrame(nn.Module):
    """Wraps a 2-D module ``(N, C, H, W) -> (N, C', H', W')`` so it maps ``(B, C, T, H, W) -> (B, C', T, H', W')``
    with time folded into the batch. Frame t's output depends on frame t only (in eval mode; in train mode a
    BatchNorm inside shares batch statistics across frames)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        y = self.module(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(y, "(b t) c h w -> b c t h w", b=b)
