"""CNN+LSTM (LRCN-style, Donahue et al. 2015): a 2-D CNN on every frame, its pooled features into an LSTM, a
classifier on the LSTM output. Causal and streamable like the RCN."""

from __future__ import annotations

import os
from collections.abc import Sequence

from einops import rearrange
from torch import Tensor, nn

from vidrcnn.models.backbones import CausalStem, frame_cnn_parts
from vidrcnn.models.registry import register_model


class CNNLSTM(nn.Module):
    """``frame_net`` maps ``(N, 3, H, W)`` to ``(N, feature_dim)``; an LSTM with ``hidden_size`` units runs over
    time; the clip logits are the last step's. ``stream(x, state)`` returns per-frame logits ``(B, T, K)`` and the
    LSTM state ``(h, c)``; the last frame's logits equal ``forward`` on the clip so far.

    ``stem``: a :class:`~vidrcnn.models.backbones.CausalStem` that runs before ``frame_net`` (``stem_frames > 1``:
    its first layer sees each frame with its predecessors, as the RCN's does); the stream state is then
    ``((h, c), the stem's past frames)``."""

    is_causal = True

    def __init__(self, *, frame_net: nn.Module, feature_dim: int, num_classes: int, hidden_size: int = 256,
                 num_layers: int = 1, dropout: float = 0.0, stem: CausalStem | None = None):
        super().__init__()
        self.stem = stem
        self.frame_net = frame_net
        self.lstm = nn.LSTM(feature_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size, num_classes)

    def _features(self, x: Tensor, stem_past: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if self.stem is not None:
            x, stem_past = self.stem(x, stem_past)
        feats = self.frame_net(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(feats, "(b t) f -> b t f", b=x.shape[0]), stem_past  # (B, T, F)

    def stream(self, x: Tensor, state=None):
        lstm_state, stem_past = (state or (None, None)) if self.stem is not None else (state, None)
        feats, stem_past = self._features(x, stem_past)
        out, lstm_state = self.lstm(feats, lstm_state)  # (B, T, hidden)
        return self.fc(self.dropout(out)), (lstm_state if self.stem is None else (lstm_state, stem_past))

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(self._features(x, None)[0])
        return self.fc(self.dropout(out[:, -1]))


def _cnn_lstm(size: str, hidden_size: int, *, num_classes: int, stem: str, stem_weights, resnet_stage: int,
              dropout: float, stem_strides: Sequence[int] | None, stem_frames: int | None,
              stem_downsample: str | None, stem_first_downsample: str | None) -> CNNLSTM:
    first, rest, dim = frame_cnn_parts(size, stem=stem, stem_weights=stem_weights, resnet_stage=resnet_stage,
                                       stem_strides=stem_strides, frames=stem_frames, downsample=stem_downsample,
                                       first_downsample=stem_first_downsample)
    # A causal stem (time in its first layer) runs on the clip before the per-frame rest; a 2-D one is its first part.
    causal = first if isinstance(first, CausalStem) else None
    net = nn.Sequential(*rest) if causal is not None else nn.Sequential(first, *rest)
    return CNNLSTM(frame_net=net, feature_dim=dim, num_classes=num_classes, hidden_size=hidden_size, dropout=dropout,
                   stem=causal)


@register_model()
def cnn_lstm_s(*, num_classes: int = 101, stem: str = "small", stem_weights: str | os.PathLike | None = None,
               resnet_stage: int = 2, dropout: float = 0.0, stem_strides: Sequence[int] | None = None,
               stem_frames: int | None = None, stem_downsample: str | None = None,
               stem_first_downsample: str | None = None) -> CNNLSTM:
    """CNN+LSTM for <= 64x64 frames (frame CNN as ``frame_avg_s``, LSTM with 128 units). ``stem_frames``: frames the
    small stem's first layer sees, a causal kernel at full resolution as in the RCNs (default: theirs,
    :data:`~vidrcnn.models.backbones.STEM_FRAMES`; 1 gives the per-frame CNN of ``frame_avg_s``); ``stem_downsample``: how the small stem's later
    layers coarsen the grid, as in the RCNs (default theirs, :data:`~vidrcnn.models.backbones.STEM_DOWNSAMPLE`);
    ``stem_first_downsample``: the same for its causal first layer (default
    :data:`~vidrcnn.models.backbones.STEM_FIRST_DOWNSAMPLE`)."""
    return _cnn_lstm("s", 128, num_classes=num_classes, stem=stem, stem_weights=stem_weights,
                     resnet_stage=resnet_stage, dropout=dropout, stem_strides=stem_strides, stem_frames=stem_frames,
                     stem_downsample=stem_downsample, stem_first_downsample=stem_first_downsample)


@register_model()
def cnn_lstm_m(*, num_classes: int = 101, stem: str = "small", stem_weights: str | os.PathLike | None = None,
               resnet_stage: int = 2, dropout: float = 0.0, stem_strides: Sequence[int] | None = None,
               stem_frames: int | None = None, stem_downsample: str | None = None,
               stem_first_downsample: str | None = None) -> CNNLSTM:
    """CNN+LSTM for 112x112 frames (frame CNN as ``frame_avg_m``, LSTM with 256 units; ``stem_frames`` as in
    :func:`cnn_lstm_s`)."""
    return _cnn_lstm("m", 256, num_classes=num_classes, stem=stem, stem_weights=stem_weights,
                     resnet_stage=resnet_stage, dropout=dropout, stem_strides=stem_strides, stem_frames=stem_frames,
                     stem_downsample=stem_downsample, stem_first_downsample=stem_first_downsample)
