"""``open_video``: pick a decoder backend for a file.

``auto`` is PyAV. Measured here (see ``tools/bench_decode.py`` and the tests): decord 0.6 returns wrong frames after
a seek on HEVC and on MPEG-4 Part 2 with B-frames, and on UCF101-like files it is not faster than the PyAV backend,
so nothing is gained by trusting it per file. ``backend="decord"`` stays available for those who want it.
"""

from __future__ import annotations

import os

from vidrcnn.io.base import VideoDecoder
from vidrcnn.io.pyav import PyAVDecoder

BACKENDS = ("auto", "pyav", "decord")


def open_video(path: str | os.PathLike, backend: str = "auto", *, num_threads: int = 1) -> VideoDecoder:
    """Open ``path`` for frame-accurate decoding; close it (or use ``with``) when done.

    ``backend``: ``"auto"`` (the one that is right for every file: PyAV), ``"pyav"`` or ``"decord"``.
    ``num_threads``: decoder threads per video; 1 suits DataLoader workers, more helps only large frames.
    Raises ``VideoDecodeError`` (naming the file and the cause) for anything that is not a decodable video.
    """
    if backend in ("auto", "pyav"):
        return PyAVDecoder(path, num_threads=num_threads)
    if backend == "decord":
        from vidrcnn.io.decord_ import DecordDecoder  # lazy: decord may not be installed

        return DecordDecoder(path, num_threads=num_threads)
    raise ValueError(f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}")
