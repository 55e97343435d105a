"""Training-recipe extras the loop calls but does not need to know about: Mixup/CutMix of video batches and an
exponential moving average (EMA) of the weights.

Both draw on torch's own tools (``torchvision.transforms.v2.MixUp``/``CutMix``, ``torch.optim.swa_utils``) and are
no-ops when off, so :func:`vidrcnn.engine.train.train_one_epoch` reads the same with or without them. Randomness
(whether a batch is mixed, lambda, the box) comes from torch's global generator, which the engine seeds per epoch:
the same seed gives the same mixing, and a resumed run mixes as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain, islice
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

from vidrcnn.errors import CheckpointError


class VideoMix:
    """Mixup and/or CutMix of a batch of clips ``(B, C, T, H, W)`` with its labels ``(B,)``.

    Each clip is mixed with its neighbour in the batch (torchvision pairs clip b with clip b-1), as ONE mixing of the
    whole clip: Mixup blends every frame with the same lambda, CutMix pastes the same box into every frame (a box
    per frame would splice a different clip into each frame). torchvision draws that lambda (and box) once per
    batch, as timm's default ``mode="batch"`` does. The targets become soft labels ``(B, num_classes)``
    (lambda, or the box's share of the area, on the clip's own label). With both alphas set, each mixed batch uses
    one of the two, chosen at random; a batch is mixed with probability ``prob``, else returned as it came (labels
    stay indices).
    """

    def __init__(self, *, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, prob: float = 1.0):
        from torchvision.transforms import v2  # lazy: torchvision takes seconds to import

        if mixup_alpha < 0 or cutmix_alpha < 0 or not 0 <= prob <= 1:
            raise ValueError(f"need alphas >= 0 and 0 <= prob <= 1, got {mixup_alpha}, {cutmix_alpha}, {prob}")
        mixes = ([v2.MixUp(alpha=mixup_alpha, num_classes=num_classes)] if mixup_alpha > 0 else []) + (
            [v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes)] if cutmix_alpha > 0 else [])
        self.enabled = bool(mixes) and prob > 0
        self.prob = prob
        self._mix = mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes) if mixes else None

    def __call__(self, clips: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(clips, targets)``: the mixed clips and soft targets ``(B, K)``, or the inputs unchanged."""
        if not self.enabled or (self.prob < 1 and float(torch.rand(())) >= self.prob):
            return clips, labels
        from torchvision import tv_tensors

        # As a Video, torchvision expects a batch of 5-D clips; it reads H, W from the last two dims and pairs along
        # dim 0 only, so our (B, C, T, H, W) layout (its own is (B, T, C, H, W)) is mixed the same way.
        mixed, targets = self._mix(tv_tensors.Video(clips), labels)
        return mixed.as_subclass(torch.Tensor), targets


def build_mixer(*, num_classes: int, mixup_alpha: float, cutmix_alpha: float, prob: float) -> VideoMix | None:
    """A :class:`VideoMix`, or None when neither Mixup nor CutMix is on (or ``prob`` is 0)."""
    mixer = VideoMix(num_classes=num_classes, mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, prob=prob)
    return mixer if mixer.enabled else None


def hard_labels(targets: torch.Tensor) -> torch.Tensor:
    """Class indices of ``targets``: the labels themselves, or a soft target's dominant class (train top-1 of a
    mixed batch counts a clip right when it names the clip that covers most of it)."""
    return targets.argmax(-1) if targets.dim() == 2 else targets


# -- EMA of the weights --------------------------------------------------------------------------------------------
def build_ema(model: nn.Module, decay: float | None) -> AveragedModel | None:
    """An EMA copy of ``model`` updated by ``ema.update_parameters(model)`` after each optimiser step, or None when
    ``decay`` is None or 0.

    ``use_buffers=True`` averages the buffers too, so the EMA model's BatchNorm running statistics belong to its own
    averaged weights rather than to the raw model's last step. The first update copies the weights.
    """
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def recompute_ema_bn(ema: AveragedModel, batches: Iterable[dict[str, Any]], num_batches: int) -> int:
    """Recompute the BatchNorm running statistics of ``ema``'s averaged weights from the readable clips of the first
    ``num_batches`` of ``batches`` (training batches, ``video`` ``(B, C, T, H, W)``), as an equal-weight average
    (``torch.optim.swa_utils.update_bn``); the weights are not touched. The averaged statistics that
    ``use_buffers=True`` keeps are an average over many weights' activations, none of them the EMA's: on the recipe
    report's ConvGRU they cost 17 points (docs/reports/training_recipe.md). Returns the number of clips seen (0: nothing changed)."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in ema.module.modules()):
        return 0  # nothing to recompute: no batch is decoded
    # Streamed, one batch in memory at a time; update_bn resets the statistics first, so it runs only once a
    # readable clip is there.
    readable = (c for c in (b["video"][b["ok"]] for b in islice(batches, num_batches)) if len(c))
    first = next(readable, None)
    if first is None:
        return 0
    seen = 0

    def counted() -> Iterator[torch.Tensor]:
        nonlocal seen
        for clips in chain([first], readable):
            seen += len(clips)
            yield clips

    update_bn(counted(), ema.module, device=next(ema.module.parameters()).device)
    return seen


def ema_state(ema: AveragedModel | None) -> dict[str, Any]:
    """What a checkpoint stores of the EMA: ``ema``, a state dict of the averaged model with the same keys as
    ``model`` (so test and inference load it into the same architecture), ``ema_updates`` (how many updates it has
    had; resume needs it, since the first update copies instead of averaging) and ``weights``, the ones test and
    inference use by default (``"ema"``). Without an EMA: ``{"weights": "raw"}``."""
    if ema is None:
        return {"weights": "raw"}
    return {"ema": ema.module.state_dict(), "ema_updates": int(ema.n_averaged), "weights": "ema"}


def load_ema_state(ema: AveragedModel, ckpt: dict[str, Any], path: Any = None) -> None:
    """Restore the average exactly from a checkpoint written with :func:`ema_state` (``path`` names it in errors)."""
    if "ema" not in ckpt:
        raise CheckpointError(path, "holds no EMA weights (it was trained without train.ema_decay)")
    ema.module.load_state_dict(ckpt["ema"])
    ema.n_averaged.fill_(int(ckpt.get("ema_updates", 1)))
