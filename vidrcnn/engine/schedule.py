"""The learning-rate schedule: linear warmup, then cosine decay to ``min_lr``. A pure function of the step
(:func:`lr_at`), and a run's :class:`Schedule`."""

from __future__ import annotations

import math
from dataclasses import dataclass


def lr_at(step: int, *, base_lr: float, total_steps: int, warmup_steps: int = 0, min_lr: float = 0.0) -> float:
    """Learning rate for optimiser step ``step`` (0-based) of ``total_steps``.

    Steps ``0 .. warmup_steps - 1`` rise linearly from ``base_lr / warmup_steps`` to ``base_lr`` (never 0, so the
    first step moves); the remaining steps follow a half cosine from ``base_lr`` down to ``min_lr``, reached at the
    last step. Steps past the end stay at ``min_lr``. Pure: resuming at step ``s`` needs nothing but ``s``.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    warmup_steps = max(0, min(warmup_steps, total_steps))
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = total_steps - warmup_steps
    if decay_steps <= 1:
        return base_lr if step < total_steps else min_lr
    progress = min(1.0, (step - warmup_steps) / (decay_steps - 1))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (base_lr - min_lr)


@dataclass(frozen=True)
class Schedule:
    """A run's schedule: :func:`lr_at` over ``epochs x steps_per_epoch`` optimiser steps."""

    base_lr: float
    steps_per_epoch: int
    epochs: int
    warmup_epochs: float = 0.0
    min_lr: float = 0.0

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def warmup_steps(self) -> int:
        return round(self.warmup_epochs * self.steps_per_epoch)

    def lr(self, step: int) -> float:
        """The learning rate of optimiser step ``step`` (0-based, counted over the whole run)."""
        return lr_at(step, base_lr=self.base_lr, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                     min_lr=self.min_lr)

    def state_at(self, epoch: int) -> dict:
        """What a checkpoint written after ``epoch`` records of the schedule (``"scheduler"``)."""
        return {"name": "warmup_cosine", "step": epoch * self.steps_per_epoch, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}
