"""decord backend. Imported lazily: decord ships wheels only for Linux x86-64.

decord 0.6 returns the wrong frame after a seek, silently, on streams that reorder frames (measured here: HEVC, H.264
with an open GOP, MPEG-4 Part 2 with B-frames in AVI) and on streams whose timestamps repeat (an MKV muxed at 30000
fps). So :class:`DecordDecoder` refuses such streams (:func:`vidrcnn.io.av_container.decord_hazard`, from a probe, not a file
name), and ``open_video(backend="decord")`` decodes those files with PyAV instead, saying so; ``backend="auto"``
does not pick decord (see ``vidrcnn.io``).
``num_frames`` is decord's own count (``len(VideoReader)``, from its packet index).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator

import torch

from vidrcnn.errors import DecordUnsafe, VideoDecodeError
from vidrcnn.io.av_container import check_orientation, decord_hazard
from vidrcnn.io.base import DecoderBase, check_file, check_size, checked_fps, resize_frames
from vidrcnn.io.pyav import display_quarter_turns


@functools.lru_cache(maxsize=1 << 16)
def _hazard(path: str, size: int, mtime_ns: int) -> str | None:
    """:func:`decord_hazard`, probed once per file version and process: a dataset opens each file every epoch, and
    the probe (0.4 ms) would add a quarter to decord's own open (1.5 ms, a 32x32 synthetic AVI)."""
    return decord_hazard(path)


def import_decord(path: str | os.PathLike | None = None):
    """The ``decord`` module, or ``VideoDecodeError`` saying it is not installed."""
    try:
        import decord
    except ImportError as exc:  # also catches a wheel that fails to load its shared library
        raise VideoDecodeError(
            path,
            f"backend 'decord' is not available ({exc}); decord ships wheels only for Linux x86-64: "
            "use backend='pyav' or 'auto'",
        ) from None
    return decord


def decord_errors(decord) -> tuple[type[BaseException], ...]:
    """What decord raises on bad input: its own DECORDError (FFmpeg's message inside) and a few builtins."""
    return (decord.DECORDError, RuntimeError, ValueError, IndexError, OSError, MemoryError)


def decord_available() -> bool:
    try:
        import_decord()
    except VideoDecodeError:
        return False
    return True


class DecordDecoder(DecoderBase):
    """Decode with ``decord.VideoReader`` on the CPU."""

    backend = "decord"

    def __init__(self, path: str | os.PathLike, *, num_threads: int = 1, orientation: str = "display"):
        self.path = check_file(path)
        check_orientation(orientation)
        decord = import_decord(self.path)
        self._reader = None
        st = os.stat(self.path)
        hazard = _hazard(self.path, st.st_size, st.st_mtime_ns)
        if hazard:
            raise DecordUnsafe(self.path, f"{hazard}, where decord returns wrong frames after a seek; decode it with "
                                          "backend='pyav' (open_video(backend='decord') does so by itself)")
        try:
            reader = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=max(1, int(num_threads)))
            self.num_frames = len(reader)
            self.fps, self.notes = checked_fps(self.path, float(reader.get_avg_fps() or 0.0))
            height, width = reader[0].shape[:2] if self.num_frames else (0, 0)
        except decord_errors(decord) as exc:
            raise VideoDecodeError(self.path, f"decord cannot read it ({_first_line(exc)})") from None
        if self.num_frames == 0:
            raise VideoDecodeError(self.path, "video stream has no frames")
        # decord applies the display matrix itself (measured: 90, 180 and 270 degrees); "raw" turns it back.
        self._undo = display_quarter_turns(self.path) if orientation == "raw" else 0
        if self._undo % 2:
            height, width = width, height
        self._reader, self.height, self.width = reader, int(height), int(width)
        self._errors = decord_errors(decord)

    def close(self) -> None:
        self._reader = None  # decord closes the file when the reader is freed

    def _live(self):
        if self._reader is None:
            raise VideoDecodeError(self.path, "decoder is closed")
        return self._reader

    def _batch(self, idx: list[int]) -> torch.Tensor:
        try:
            frames = torch.from_numpy(self._live().get_batch(idx).asnumpy())
            return torch.rot90(frames, -self._undo, dims=(1, 2)).contiguous() if self._undo else frames
        except self._errors as exc:
            raise VideoDecodeError(self.path, f"decord failed to decode ({_first_line(exc)})") from None

    def _get_frames(self, idx: list[int], size: tuple[int, int] | None) -> torch.Tensor:
        frames = self._batch(idx)
        return resize_frames(frames, size) if size else frames

    def iter_frames(self, chunk_size: int = 32, size: tuple[int, int] | None = None) -> Iterator[torch.Tensor]:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        size = check_size(size)
        for start in range(0, self.num_frames, chunk_size):
            frames = self._batch(list(range(start, min(start + chunk_size, self.num_frames))))
            yield resize_frames(frames, size) if size else frames


def _first_line(exc: BaseException) -> str:
    # decord's messages carry a multi-line C++ stack trace; the first line is the cause.
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
