"""Models: ``get_model(name, num_classes=...)`` and ``list_models()``.

Every model maps a float clip ``(B, C, T, H, W)`` to logits ``(B, num_classes)`` and says whether it is causal
(``is_causal``). Causal models (the RCNs and CNN+LSTM) also offer ``stream(x, state=None) -> (per_frame_logits
(B, T, num_classes), state)``. See docs/guide/models.md for every model's parameters and FLOPs.
"""

# Importing the family modules registers their builders.
from vidrcnn.models import c3d, cnn_lstm, frame_avg, rcn, rcnn, torchvision_3d  # noqa: F401
from vidrcnn.models.c3d import C3D
from vidrcnn.models.cnn_lstm import CNNLSTM
from vidrcnn.models.frame_avg import FrameAverage
from vidrcnn.models.rcn import RCN, StreamState
from vidrcnn.models.rcnn import RCNN
from vidrcnn.models.registry import get_model, list_models, register_model

__all__ = ["C3D", "CNNLSTM", "RCN", "RCNN", "FrameAverage", "StreamState", "get_model", "list_models",
           "register_model"]
