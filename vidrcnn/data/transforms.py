"""Clip transforms on uint8 video tensors with torchvision.transforms.v2.

A clip arrives from the decoder as uint8 ``(T, H, W, 3)`` RGB and leaves as float ``(C, T, H, W)``, normalised; the
DataLoader stacks clips into ``(B, C, T, H, W)``, the layout every vidrcnn model takes. Random parameters (crop
position, flip) are drawn once per clip and applied to every frame, because torchvision treats the tensor as a
``tv_tensors.Video``. Randomness comes from torch's generator, which DataLoader seeds per worker.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

# Kinetics-400 statistics, as torchvision's video classification models (r3d_18, mc3_18, r2plus1d_18) expect.
MEAN: tuple[float, float, float] = (0.43216, 0.394666, 0.37645)
STD: tuple[float, float, float] = (0.22803, 0.22145, 0.216989)


class VideoTransform:
    """uint8 ``(T, H, W, 3)`` -> float ``(C, T, H, W)`` (or ``(3, C, T, H, W)`` with ``three_crop``).

    Built by :func:`build_transform`; a plain picklable object so DataLoader workers can copy it. ``size`` and
    ``three_crop`` are public so a dataset can build a zero clip of the right shape without decoding anything.
    """

    def __init__(
        self,
        *,
        train: bool,
        size: int,
        resize: int,
        flip: bool,
        mean: Sequence[float],
        std: Sequence[float],
        three_crop: bool,
    ):
        self.train, self.size, self.resize, self.flip = train, size, resize, flip
        self.mean, self.std, self.three_crop = tuple(mean), tuple(std), three_crop
        # Resize on uint8 first (cheaper, and the antialiased uint8 path is exact), convert to float last.
        self._resize = v2.Resize(resize, antialias=True)
        crop = [v2.RandomCrop(size)] if train else ([] if three_crop else [v2.CenterCrop(size)])
        flips = [v2.RandomHorizontalFlip(p=0.5)] if (train and flip) else []
        self._rest = v2.Compose(
            [*crop, *flips, v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(self.mean), list(self.std))]
        )

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        is_clip = isinstance(frames, torch.Tensor) and frames.dtype == torch.uint8 and frames.ndim == 4
        if not is_clip or frames.shape[-1] != 3:
            shape = tuple(frames.shape) if hasattr(frames, "shape") else type(frames).__name__
            raise ValueError(f"expected a uint8 tensor (T, H, W, 3), got {getattr(frames, 'dtype', '?')} {shape}")
        video = tv_tensors.Video(frames.permute(0, 3, 1, 2))  # (T, 3, H, W): torchvision's video layout
        video = self._resize(video)
        if not self.three_crop:
            return self._rest(video).permute(1, 0, 2, 3).contiguous()  # (C, T, H, W)
        crops = [self._rest(c).permute(1, 0, 2, 3) for c in _three_crops(video, self.size)]
        return torch.stack(crops).contiguous()  # (3, C, T, H, W)

    def __repr__(self) -> str:
        return (f"VideoTransform(train={self.train}, size={self.size}, resize={self.resize}, flip={self.flip}, "
                f"three_crop={self.three_crop})")


def _three_crops(video: torch.Tensor, size: int) -> list[torch.Tensor]:
    # Start, centre and end of the long side, centred on the short side (the usual 3-crop video test).
    h, w = video.shape[-2:]
    if w >= h:
        top = (h - size) // 2
        return [v2.functional.crop(video, top, left, size, size) for left in (0, (w - size) // 2, w - size)]
    left = (w - size) // 2
    return [v2.functional.crop(video, top, left, size, size) for top in (0, (h - size) // 2, h - size)]


def build_transform(
    *,
    train: bool,
    size: int,
    resize: int | None = None,
    flip: bool = False,
    mean: Sequence[float] = MEAN,
    std: Sequence[float] = STD,
    three_crop: bool = False,
) -> VideoTransform:
    """The clip transform: resize the short side to ``resize``, crop ``size`` x ``size``, optionally flip, normalise.

    - ``train=True``: random crop (same position for every frame of the clip); ``train=False``: centre crop.
    - ``resize=None`` resizes the short side to ``size`` itself, so the crop only trims the long side.
    - ``flip`` is off by default on purpose: a horizontal flip turns a left-moving action into a right-moving one,
      which changes the label of direction-sensitive classes (the synthetic MoveLeft/MoveRight pair). Only train
      clips are ever flipped.
    - ``three_crop=True`` (eval only) returns three crops along the long side, ``(3, C, T, H, W)``, to average.
    - ``mean``/``std`` are per channel, on the [0, 1] scale; the defaults are Kinetics-400's (:data:`MEAN`,
      :data:`STD`).
    """
    resize = size if resize is None else resize
    if size < 1 or resize < size:
        raise ValueError(f"need 1 <= size <= resize, got size={size}, resize={resize}")
    if three_crop and train:
        raise ValueError("three_crop is a test-time transform; use it with train=False")
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std need 3 values (RGB), got {mean!r} and {std!r}")
    return VideoTransform(train=train, size=size, resize=resize, flip=flip, mean=mean, std=std, three_crop=three_crop)
