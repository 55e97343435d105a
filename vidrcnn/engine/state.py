"""What a training run carries from step to step and epoch to epoch: :class:`TrainState`."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from vidrcnn.engine.distributed import SINGLE, DistInfo
from vidrcnn.engine.recipe import VideoMix
from vidrcnn.engine.schedule import Schedule


@dataclass
class TrainState:
    """The model and what updates it, how a step runs, and the progress a checkpoint records.

    ``autocast`` and ``scaler`` are no-ops where mixed precision is off (``torch.autocast(enabled=False)``,
    ``GradScaler(enabled=False)``), ``ema`` and ``mixer`` None where off, so a step reads the same either way.
    ``trained`` is the model each step runs: DistributedDataParallel around ``model`` under torchrun, else ``model``
    itself; ``model`` is what is validated, averaged and checkpointed.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    device: torch.device
    autocast: AbstractContextManager
    scaler: torch.amp.GradScaler
    info: DistInfo = SINGLE
    ema: AveragedModel | None = None
    mixer: VideoMix | None = None
    clip_grad: float = 0.0  # clip the global gradient norm to this; 0: off
    label_smoothing: float = 0.0
    channels_last: bool = False
    trained: nn.Module | None = None
    epoch: int = 0  # the last finished epoch
    best_top1: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)  # one metrics dict per finished epoch
    # train.cuda_graph: forward, loss and update in one captured step, (x, y) -> (logits, loss) after the update
    graphed_step: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None

    def __post_init__(self) -> None:
        if self.trained is None:
            self.trained = self.model
