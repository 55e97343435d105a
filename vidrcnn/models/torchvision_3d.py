"""torchvision's 18-layer video ResNets (Tran et al. 2018): ``r3d_18``, ``mc3_18``, ``r2plus1d_18``.

Nothing is downloaded unless asked: ``pretrained=True`` uses torchvision's weights API for the Kinetics-400 weights
(from the local torch hub cache, or downloaded when online) and replaces ``fc`` by a fresh ``num_classes`` layer;
``pretrained`` may instead be the path of a local file holding the model's Kinetics ``state_dict``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from vidrcnn.errors import CheckpointError
from vidrcnn.models.registry import register_model


def _video_resnet(arch: str, *, num_classes: int, pretrained: bool | str | os.PathLike) -> nn.Module:
    from torchvision.models import get_model_weights
    from torchvision.models import video as tv_video

    builder = getattr(tv_video, arch)
    if pretrained is False or pretrained is None:
        model = builder(weights=None, num_classes=num_classes)
    else:
        if pretrained is True:
            weights = get_model_weights(builder).KINETICS400_V1
            try:
                model = builder(weights=weights)
            except Exception as e:  # offline without a cached file, or a corrupt download
                raise CheckpointError(None, f"cannot load {weights}: {e}") from e
        else:
            path = Path(pretrained)
            model = builder(weights=None)
            try:
                model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            except Exception as e:
                raise CheckpointError(path, f"cannot load {arch} weights: {e}") from e
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    model.is_causal = False
    return model


@register_model()
def r3d_18(*, num_classes: int = 101, pretrained: bool | str | os.PathLike = False) -> nn.Module:
    """torchvision R3D-18 (3-D convolutions throughout)."""
    return _video_resnet("r3d_18", num_classes=num_classes, pretrained=pretrained)


@register_model()
def mc3_18(*, num_classes: int = 101, pretrained: bool | str | os.PathLike = False) -> nn.Module:
    """torchvision MC3-18 (3-D convolutions in the first stage, 2-D above)."""
    return _video_resnet("mc3_18", num_classes=num_classes, pretrained=pretrained)


@register_model()
def r2plus1d_18(*, num_classes: int = 101, pretrained: bool | str | os.PathLike = False) -> nn.Module:
    """torchvision R(2+1)D-18 (each 3-D convolution factored into spatial then temporal)."""
    return _video_resnet("r2plus1d_18", num_classes=num_classes, pretrained=pretrained)
