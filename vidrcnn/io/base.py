"""What every decoder backend shares: the :class:`VideoDecoder` protocol, :class:`VideoInfo`, argument checks.

A decoder returns frames as ``torch.uint8`` tensors ``(T, H, W, 3)`` in RGB, indexed in display order from 0 to
``num_frames - 1``. Backends live in their own modules (``pyav.py``, ``decord_backend.py``, ``frames.py``); ``open_video`` picks one.
"""

from __future__ import annotations

import logging
import operator
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover - Python 3.10
    from typing_extensions import Self

from vidrcnn.errors import VideoDecodeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    """Metadata of a video stream. ``duration`` is ``num_frames / fps`` in seconds (0.0 when fps is unknown).
    ``notes``: problems found in the metadata that the decoder worked around (e.g. an implausible frame rate)."""

    num_frames: int
    fps: float
    width: int
    height: int
    duration: float
    notes: tuple[str, ...] = ()


@runtime_checkable
class VideoDecoder(Protocol):
    """One open video. ``num_frames`` is what the backend can actually deliver (see the backend for how it is got)."""

    path: str
    backend: str
    num_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration(self) -> float: ...

    def get_frames(self, indices: Sequence[int], size: tuple[int, int] | None = None) -> torch.Tensor:
        """Frames ``indices`` (display order, any order, duplicates allowed) as uint8 ``(T, H, W, 3)`` RGB.

        ``size=(H, W)`` resizes (bilinear). An index outside ``[0, num_frames)`` raises ``VideoDecodeError``.
        """
        ...

    def iter_frames(self, chunk_size: int = 32, size: tuple[int, int] | None = None) -> Iterator[torch.Tensor]:
        """Every frame in display order, decoded sequentially, in uint8 chunks ``(n <= chunk_size, H, W, 3)``."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


# A frame rate outside this range is not believed: phones record up to 240 fps, slow-motion cameras 960; a header
# that says 1e8 or 30000 fps, or 0.01, is a broken or hand-edited file.
PLAUSIBLE_FPS = (1.0, 1000.0)
_warned: set[tuple[str, str]] = set()


def checked_fps(path: str, stated: float, from_timestamps: float | None = None) -> tuple[float, tuple[str, ...]]:
    """The frame rate to use and the notes on it: the container's ``stated`` rate when plausible (with a note when
    the timestamps' rate disagrees by more than 2x), else the timestamps' rate when that is plausible, else 0.0
    (unknown). Each note is logged once per file and process, as a warning (:func:`warn_once`)."""
    lo, hi = PLAUSIBLE_FPS

    def ok(rate: float | None) -> bool:
        return rate is not None and lo <= rate <= hi

    def fmt(rate: float | None) -> str:
        return "none" if not rate else f"{rate:.6g} fps"

    if ok(stated):
        fps = stated
        far = ok(from_timestamps) and max(stated, from_timestamps) > 2 * min(stated, from_timestamps)
        note = (f"the container says {fmt(stated)} but the timestamps say {fmt(from_timestamps)}; using "
                f"{fmt(stated)}") if far else None
    elif ok(from_timestamps):
        fps = from_timestamps
        note = (f"the container's frame rate ({fmt(stated)}) is not plausible ({lo:g}-{hi:g} fps); using "
                f"{fmt(from_timestamps)} from the timestamps")
    else:
        fps = 0.0
        note = (f"no plausible frame rate ({lo:g}-{hi:g} fps): the container says {fmt(stated)}, the timestamps "
                f"{fmt(from_timestamps)}; treated as unknown")
    if note is None:
        return fps, ()
    warn_once(path, note)
    return fps, (note,)


def warn_once(path: str, note: str) -> None:
    """Log a metadata note about ``path`` as a warning, once per file and note in this process (a dataset opens the
    same file every epoch)."""
    if (path, note) not in _warned:
        _warned.add((path, note))
        log.warning("%s: %s", path, note)


class DecoderBase:
    """Shared plumbing for backends: context manager, ``duration``, ``info``, argument checks."""

    path: str
    backend: str
    num_frames: int
    fps: float
    width: int
    height: int
    notes: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0

    def frame_times(self) -> list[float] | None:
        """Each frame's presentation time in seconds from the first frame (display order), from the file's own
        timestamps; None when the backend has none (times are then index / fps)."""
        return None

    @property
    def info(self) -> VideoInfo:
        return VideoInfo(self.num_frames, self.fps, self.width, self.height, self.duration, tuple(self.notes))

    def close(self) -> None:  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.path!r}, num_frames={self.num_frames}, fps={self.fps:.3f}, "
            f"size={self.width}x{self.height})"
        )

    def get_frames(self, indices: Sequence[int], size: tuple[int, int] | None = None) -> torch.Tensor:
        """The protocol's ``get_frames``: indices and size checked here, the decoding in ``_get_frames``."""
        idx = self._check_indices(indices)
        size = check_size(size)
        if not idx:
            return empty_frames(*(size or (self.height, self.width)))
        return self._get_frames(idx, size)

    def _get_frames(self, idx: list[int], size: tuple[int, int] | None) -> torch.Tensor:  # pragma: no cover
        """Frames ``idx`` (checked, non-empty) as uint8 ``(T, H, W, 3)``, resized to ``size`` when given."""
        raise NotImplementedError

    def _check_indices(self, indices: Sequence[int]) -> list[int]:
        try:
            idx = [operator.index(i) for i in indices]
        except TypeError:
            raise TypeError(f"frame indices must be integers, got {list(indices)[:8]!r}") from None
        bad = [i for i in idx if not 0 <= i < self.num_frames]
        if bad:
            raise VideoDecodeError(
                self.path, f"frame index {bad[0]} out of range: the video has {self.num_frames} frames (0..{self.num_frames - 1})"
            )
        return idx


def check_size(size: tuple[int, int] | None) -> tuple[int, int] | None:
    """Validate an optional output size ``(H, W)``."""
    if size is None:
        return None
    h, w = (int(v) for v in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be two positive integers (H, W), got {size!r}")
    return h, w


def check_file(path: str | os.PathLike) -> str:
    """Return ``path`` as a string if it names a non-empty regular file, else raise ``VideoDecodeError``.

    Checked before any library sees the path so that the common mistakes get a plain cause, not an FFmpeg one.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VideoDecodeError(path, "no such file")
    if os.path.isdir(path):
        raise VideoDecodeError(path, "is a directory, not a video file")
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")
    return path


def empty_frames(height: int, width: int) -> torch.Tensor:
    """A ``(0, H, W, 3)`` uint8 tensor: what ``get_frames([])`` returns."""
    return torch.empty((0, height, width, 3), dtype=torch.uint8)


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of uint8 ``(T, H, W, 3)`` to ``size=(H, W)``."""
    if tuple(frames.shape[1:3]) == tuple(size) or frames.shape[0] == 0:
        return frames if frames.shape[0] else torch.empty((0, *size, 3), dtype=torch.uint8)
    x = frames.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
