"""CNN+LSTM (LRCN-style, Donahue et al. 2015): a 2-D CNN on every frame, its pooled features into an LSTM, a
classifier on the LSTM output. Causal and streamable like the RCN."""

from __future__ import annotations

import os
from collections.abc import Sequence

from einops import rearrange
from torch import Tensor, nn

from vidrcnn.models.backbones import frame_cnn
from vidrcnn.models.registry import register_model


class CNNLSTM(nn.Module):
    """``frame_net`` maps ``(N, 3, H, W)`` to ``(N, feature_dim)``; an LSTM with ``hidden_size`` units runs over
    time; the clip logits are the last step's. ``stream(x, state)`` returns per-frame logits ``(B, T, K)`` and the
    LSTM state ``(h, c)``; the last frame's logits equal ``forward`` on the clip so far."""

    is_causal = True

    def __init__(self, *, frame_net: nn.Module, feature_dim: int, num_classes: int, hidden_size: int = 256,
                 num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.frame_net = frame_net
        self.lstm = nn.LSTM(feature_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size, num_classes)

    def stream(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        b = x.shape[0]
        feats = self.frame_net(rearrange(x, "b c t h w -> (b t) c h w"))
        out, state = self.lstm(rearrange(feats, "(b t) f -> b t f", b=b), state)  # (B, T, hidden)
        return self.fc(self.dropout(out)), state

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        feats = self.frame_net(rearrange(x, "b c t h w -> (b t) c h w"))
        out, _ = self.lstm(rearrange(feats, "(b t) f -> b t f", b=b))
        return self.fc(self.dropout(out[:, -1]))


def _cnn_lstm(size: str, hidden_size: int, *, num_classes: int, stem: str, stem_weights, resnet_stage: int,
              dropout: float, stem_strides: Sequence[int] | None) -> CNNLSTM:
    net, dim = frame_cnn(size, stem=stem, stem_weights=stem_weights, resnet_stage=resnet_stage,
                         stem_strides=stem_strides)
    return CNNLSTM(frame_net=net, feature_dim=dim, num_classes=num_classes, hidden_size=hidden_size, dropout=dropout)


@register_model()
def cnn_lstm_s(*, num_classes: int = 101, stem: str = "small", stem_weights: str | os.PathLike | None = None,
               resnet_stage: int = 2, dropout: float = 0.0,
               stem_strides: Sequence[int] | None = None) -> CNNLSTM:
    """CNN+LSTM for <= 64x64 frames (frame CNN as ``frame_avg_s``, LSTM with 128 units)."""
    return _cnn_lstm("s", 128, num_classes=num_classes, stem=stem, stem_weights=stem_weights,
                     resnet_stage=resnet_stage, dropout=dropout, stem_strides=stem_strides)


@register_model()
def cnn_lstm_m(*, num_classes: int = 101, stem: str = "small", stem_weights: str | os.PathLike | None = None,
               resnet_stage: int = 2, dropout: float = 0.0,
               stem_strides: Sequence[int] | None = None) -> CNNLSTM:
    """CNN+LSTM for 112x112 frames (frame CNN as ``frame_avg_m``, LSTM with 256 units)."""
    return _cnn_lstm("m", 256, num_classes=num_classes, stem=stem, stem_weights=stem_weights,
                     resnet_stage=resnet_stage, dropout=dropout, stem_strides=stem_strides)
