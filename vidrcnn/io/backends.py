"""``open_video``: pick a decoder backend for a file.

``auto`` is PyAV. Measured here (see ``tools/bench_decode.py`` and the tests): decord 0.6 returns wrong frames after
a seek on streams that reorder frames (HEVC, H.264 with an open GOP, MPEG-4 Part 2 with B-frames), and on UCF101-like
files it is not faster than the PyAV backend. ``backend="decord"`` stays available for those who want it, and is
exact: a file whose stream reorders frames or repeats timestamps (probed, see :func:`vidrcnn.io.av_container.decord_hazard`)
is decoded with PyAV, with a warning naming the first such file; where decord is not installed (it ships wheels only for Linux
x86-64) it falls back to PyAV and says so, once per process.
"""

from __future__ import annotations

import logging
import os

from vidrcnn.errors import DecordUnsafe
from vidrcnn.io.base import VideoDecoder
from vidrcnn.io.decord_backend import DecordDecoder, decord_available
from vidrcnn.io.frames import FrameFolderDecoder
from vidrcnn.io.pyav import PyAVDecoder

BACKENDS = ("auto", "pyav", "decord", "frames")
log = logging.getLogger(__name__)
_warned_no_decord = False
_unsafe_seen = 0


def _warn_unsafe(exc) -> None:
    """One warning naming the first file decord would get wrong; later ones at INFO (a dataset may hold thousands)."""
    global _unsafe_seen
    _unsafe_seen += 1
    level = logging.WARNING if _unsafe_seen == 1 else logging.INFO
    log.log(level, "%s: decoding with PyAV, not decord (%s)%s", exc.path, exc.cause.split(";")[0],
            "; further such files are logged at INFO" if _unsafe_seen == 1 else "")


def open_video(path: str | os.PathLike, backend: str = "auto", *, num_threads: int = 1,
               orientation: str = "display") -> VideoDecoder:
    """Open ``path`` for frame-accurate decoding; close it (or use ``with``) when done.

    ``backend``: ``"auto"`` (the one that is right for every file: PyAV), ``"pyav"`` or ``"decord"`` (PyAV, with a
    warning, where decord is not installed).
    ``num_threads``: decoder threads per video; 1 suits DataLoader workers, more helps only large frames.
    ``orientation``: ``"display"`` turns frames as the file's display matrix says (phone videos filmed upright come
    out upright, ``width``/``height`` are the displayed ones); ``"raw"`` gives the coded picture unturned.
    Raises ``VideoDecodeError`` (naming the file and the cause) for anything that is not a decodable video.
    """
    global _warned_no_decord
    if backend == "frames" or (backend in BACKENDS and os.path.isdir(path)):
        return FrameFolderDecoder(path)  # a folder of extracted frames, whatever the backend
    if backend == "decord":
        if decord_available():
            try:
                return DecordDecoder(path, num_threads=num_threads, orientation=orientation)
            except DecordUnsafe as exc:
                _warn_unsafe(exc)
        if not _warned_no_decord:
            _warned_no_decord = True
            log.warning("backend 'decord' asked for, but decord is not installed (it ships wheels only for Linux "
                        "x86-64): decoding with PyAV instead")
        backend = "pyav"
    if backend in ("auto", "pyav"):
        return PyAVDecoder(path, num_threads=num_threads, orientation=orientation)
    raise ValueError(f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}")
