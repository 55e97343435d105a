"""``open_video``: pick a decoder backend for a file.

``auto`` is PyAV. Measured here (see ``tools/bench_decode.py`` and the tests): decord 0.6 returns wrong frames after
a seek on HEVC and on MPEG-4 Part 2 with B-frames, and on UCF101-like files it is not faster than the PyAV backend,
so nothing is gained by trusting it per file. ``backend="decord"`` stays available for those who want it; where
decord is not installed (it ships wheels only for Linux x86-64) it falls back to PyAV and says so, once per process.
"""

from __future__ import annotations

import logging
import os

from vidrcnn.io.base import VideoDecoder
from vidrcnn.io.pyav import PyAVDecoder

BACKENDS = ("auto", "pyav", "decord")
log = logging.getLogger(__name__)
_warned_no_decord = False


def open_video(path: str | os.PathLike, backend: str = "auto", *, num_threads: int = 1) -> VideoDecoder:
    """Open ``path`` for frame-accurate decoding; close it (or use ``with``) when done.

    ``backend``: ``"auto"`` (the one that is right for every file: PyAV), ``"pyav"`` or ``"decord"`` (PyAV, with a
    warning, where decord is not installed).
    ``num_threads``: decoder threads per video; 1 suits DataLoader workers, more helps only large frames.
    Raises ``VideoDecodeError`` (naming the file and the cause) for anything that is not a decodable video.
    """
    global _warned_no_decord
    if backend == "decord":
        from vidrcnn.io.decord_ import DecordDecoder, decord_available  # lazy: decord may not be installed

        if decord_available():
            return DecordDecoder(path, num_threads=num_threads)
        if not _warned_no_decord:
            _warned_no_decord = True
            log.warning("backend 'decord' asked for, but decord is not installed (it ships wheels only for Linux "
                        "x86-64): decoding with PyAV instead")
        backend = "pyav"
    if backend in ("auto", "pyav"):
        return PyAVDecoder(path, num_threads=num_threads)
    raise ValueError(f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}")
