"""Write RGB frames to a video file with PyAV, chunk by chunk (memory stays bounded)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np
import torch


class VideoWriter:
    """Encode uint8 RGB frames ``(T, H, W, 3)`` into ``path``; use as a context manager.

    ``codec`` is an FFmpeg encoder name (``mpeg4`` for UCF101-style AVI, ``libx264``, ``ffv1`` for lossless...).
    ``options`` go to the encoder (e.g. ``{"bf": "2"}`` for B-frames with libx264, ``{"qp": "0"}`` for lossless).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float = 25.0,
        codec: str = "mpeg4",
        pix_fmt: str = "yuv420p",
        gop: int | None = None,
        bit_rate: int | None = None,
        options: dict[str, str] | None = None,
    ):
        self.path = os.fspath(path)
        self._fps = Fraction(fps).limit_denominator(1001)
        self._codec, self._pix_fmt, self._gop, self._bit_rate = codec, pix_fmt, gop, bit_rate
        self._options = dict(options or {})
        with self._path_in_errors():
            self._container = av.open(self.path, mode="w")
        self._stream = None

    @contextlib.contextmanager
    def _path_in_errors(self) -> Iterator[None]:
        """FFmpeg reports a file it cannot create only when the header is written, and without the file name:
        re-raise such an OSError with ``self.path`` so that tools can say which file."""
        try:
            yield
        except OSError as exc:
            if exc.filename:
                raise
            raise OSError(exc.errno, exc.strerror or str(exc), self.path) from None

    def _open_stream(self, height: int, width: int) -> None:
        stream = self._container.add_stream(self._codec, rate=self._fps, options=self._options)
        stream.width, stream.height, stream.pix_fmt = width, height, self._pix_fmt
        if self._gop is not None:
            stream.codec_context.gop_size = self._gop
        if self._bit_rate is not None:
            stream.bit_rate = self._bit_rate
        self._stream = stream

    def write(self, frames: torch.Tensor | np.ndarray) -> None:
        """Append frames, uint8 ``(T, H, W, 3)`` or one frame ``(H, W, 3)``."""
        frames = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
        if self._stream is None:
            self._open_stream(frames.shape[1], frames.shape[2])
        with self._path_in_errors():
            for array in frames:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
                self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        if self._container is None:
            return
        try:
            with self._path_in_errors():
                if self._stream is not None:
                    self._container.mux(self._stream.encode(None))  # flush delayed (B-)frames
        finally:
            container, self._container = self._container, None
            with self._path_in_errors():  # writing the trailer can fail too (a full disk)
                container.close()

    def __enter__(self) -> VideoWriter:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_video(path: str | os.PathLike, frames: torch.Tensor | np.ndarray, fps: float = 25.0, **kwargs) -> None:
    """Write all ``frames`` (uint8 ``(T, H, W, 3)`` RGB) to ``path``; ``kwargs`` as for :class:`VideoWriter`."""
    with VideoWriter(path, fps=fps, **kwargs) as writer:
        writer.write(frames)
