"""The predictor: a checkpoint made ready for inference (the model, its preprocessing, the frame spacing it was trained
with).

Frame spacing. A model was trained on frames ``stride`` apart (``preprocess["stride"]`` in the checkpoint). When the
checkpoint also records the training videos' frame rate (``preprocess["fps"]``), the stride is rescaled to this
video's rate so that a clip spans the same time; otherwise it is used as is (UCF101 and the synthetic set are 25 fps).
For ``sampling="segments"`` (TSN) models the training spacing depended on each training video's length; the
checkpoint records the typical one (``preprocess["segment_stride"]``: the median training video length over
``num_frames``) and that is used, rescaled the same way (older checkpoints without it fall back to ``stride``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vidrcnn.engine.checkpoint import load_checkpoint, model_from_checkpoint
from vidrcnn.engine.distributed import resolve_device
from vidrcnn.errors import CheckpointError
from vidrcnn.layers.fold import fold_batch_norms

Transform = Callable[[torch.Tensor], torch.Tensor]  # uint8 (T, H, W, 3) -> float (C, T, H, W)


REQUIRED_KEYS = ("model", "model_name", "num_classes", "classes", "preprocess")


@dataclass
class Predictor:
    """A model with what it needs to read raw frames: class names, eval transform, clip length and spacing."""

    model: nn.Module
    classes: list[str]
    transform: Transform
    num_frames: int
    stride: int = 1
    train_fps: float | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    name: str = ""  # the registered model name
    preprocess: dict[str, Any] = field(default_factory=dict)  # as the checkpoint recorded it

    @property
    def is_causal(self) -> bool:
        return bool(getattr(self.model, "is_causal", False))

    @property
    def frame_interval_s(self) -> float:
        """Seconds between two frames the model sees in a live stream (the training stride at its frame rate, 25 fps
        when the checkpoint does not record it)."""
        return max(1, self.stride) / (self.train_fps or 25.0)

    def frame_stride(self, video_fps: float) -> int:
        """Frames of this video between two frames the model sees (the training stride, rescaled by frame rate)."""
        if self.train_fps and video_fps > 0:
            return max(1, round(self.stride * video_fps / self.train_fps))
        return max(1, self.stride)


def model_stride(preprocess: dict[str, Any]) -> int:
    """Frames between two frames the model saw in training: ``stride``, or ``segment_stride`` for a segments model."""
    if preprocess.get("sampling") == "segments" and preprocess.get("segment_stride"):
        return int(preprocess["segment_stride"])
    return int(preprocess.get("stride") or 1)


def load_predictor(checkpoint: str | os.PathLike, *, device: str | torch.device = "cpu",
                   weights: str | None = None, fold_norms: bool = True) -> Predictor:
    """Load a training checkpoint for inference; every problem with it is a ``CheckpointError`` naming the file.

    ``device="auto"`` picks CUDA when available. ``weights``: ``"ema"`` or ``"raw"``; None takes the checkpoint's
    default (its EMA of the weights when it was trained with one). ``fold_norms``: fold every BatchNorm into the
    convolution before it (:func:`vidrcnn.layers.fold_batch_norms`): the same outputs up to float rounding, one
    kernel fewer per folded pair (per streamed frame, one per recurrent layer).
    """
    path = os.fspath(checkpoint)
    ckpt = load_checkpoint(path)
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(path, f"not a vidrcnn training checkpoint (missing {', '.join(missing)})")
    device = resolve_device(device)
    # Imported only now: it pulls in torchvision (seconds), which a missing or corrupt file need not wait for.
    from vidrcnn.data.transforms import build_transform

    try:
        model = model_from_checkpoint(ckpt, weights=weights).to(device).eval()
        if fold_norms:
            fold_batch_norms(model)
        pre = ckpt["preprocess"]
        transform = build_transform(
            train=False, size=int(pre["size"]), resize=pre.get("resize"),
            **{k: pre[k] for k in ("mean", "std") if pre.get(k) is not None},
        )
        predictor = Predictor(
            model=model, classes=[str(c) for c in ckpt["classes"]], transform=transform,
            num_frames=int(pre["num_frames"]), stride=model_stride(pre),
            train_fps=float(pre["fps"]) if pre.get("fps") else None, device=torch.device(device),
            name=str(ckpt["model_name"]), preprocess=dict(pre),
        )
    except CheckpointError as exc:
        if exc.path is None:  # model_from_checkpoint sees only the dict: name the file here
            raise CheckpointError(path, exc.cause) from None
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(path, f"incompatible checkpoint ({type(exc).__name__}: {exc})") from None
    if len(predictor.classes) != int(ckpt["num_classes"]):
        raise CheckpointError(path, f"{len(predictor.classes)} class names for {ckpt['num_classes']} classes")
    if predictor.is_causal and not hasattr(model, "stream"):
        raise CheckpointError(path, f"model {ckpt['model_name']!r} is causal but has no stream()")
    return predictor
