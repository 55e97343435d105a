"""Checkpoints as training writes them, for the tests of the tools that read them (infer, export)."""

from __future__ import annotations

from pathlib import Path

import torch

from vidrcnn.data.transforms import MEAN, STD
from vidrcnn.engine.checkpoint import DEFAULTS_VERSION, save_checkpoint
from vidrcnn.models import get_model

CLASSES = ["Archery", "Biking", "Diving"]


def write_checkpoint(path: Path, model_name: str, *, favour: int | None = 1, num_frames: int = 4, stride: int = 2,
                     size: int = 32, **changes) -> Path:
    """A checkpoint as training writes it. ``favour``: zero the classifier and bias it to that class, so the
    prediction is known whatever the input; None keeps the random weights."""
    torch.manual_seed(0)
    model = get_model(model_name, num_classes=len(CLASSES))
    if favour is not None:
        with torch.no_grad():
            model.fc.weight.zero_()
            model.fc.bias.copy_(torch.nn.functional.one_hot(torch.tensor(favour), len(CLASSES)) * 8.0)
    state = {
        "model": model.state_dict(), "optimizer": None, "scheduler": None, "scaler": None, "epoch": 3,
        "config": {"model": {"name": model_name}}, "model_name": model_name, "num_classes": len(CLASSES),
        "classes": list(CLASSES), "best_top1": 0.0, "metrics": {}, "defaults_version": DEFAULTS_VERSION,
        "preprocess": {"num_frames": num_frames, "stride": stride, "sampling": "dense", "size": size, "resize": size,
                       "mean": list(MEAN), "std": list(STD)},
    }
    state.update(changes)
    save_checkpoint(path, state)
    return path


