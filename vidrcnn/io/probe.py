"""Video metadata without decoding (``probe_video``) and a persistent cache of it (``ProbeCache``).

The probe demuxes the video stream once (no decoding), so ``num_frames`` is the same exact count the PyAV decoder
uses; see ``vidrcnn.io.pyav`` for how it is defined. A UCF101 clip probes in about a millisecond; the cache makes a
13,000-video scan a one-off rather than a per-epoch cost.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from dataclasses import asdict

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover - Python 3.10
    from typing_extensions import Self

from vidrcnn.errors import OutputError, VideoDecodeError
from vidrcnn.io.base import VideoInfo
from vidrcnn.io.pyav import PyAVDecoder

log = logging.getLogger(__name__)

_CACHE_VERSION = 3  # 2: VideoInfo.notes (e.g. an implausible frame rate); 3: the truncation note


def probe_video(path: str | os.PathLike, *, verify: bool = False) -> VideoInfo:
    """Frame count, fps, size and duration of ``path``; ``VideoDecodeError`` if it is not a readable video.

    ``verify=True`` also decodes every frame once, which finds corruption in the middle of a file that demuxing
    alone cannot see (about 0.2 ms a frame at 320x240).
    """
    if os.path.isdir(path):  # a folder of extracted frames
        from vidrcnn.io.frames import FrameFolderDecoder

        with FrameFolderDecoder(path) as frames:
            if verify:
                frames.get_frames(range(frames.num_frames))
            return frames.info
    with PyAVDecoder(path) as decoder:
        if verify:
            decoder.verify()
        return decoder.info


class ProbeCache:
    """``probe_video`` results persisted as JSON, keyed by absolute path and invalidated by size or mtime changes.

    Failures are cached too (as their cause) and re-raised as ``VideoDecodeError``, so a re-scan does not re-read
    bad files either. ``cache_file=None`` keeps the cache in memory only. New entries are written every
    ``autosave`` probes and on :meth:`save` / ``close`` / leaving a ``with`` block; the write is atomic (temp file
    plus rename), so concurrent processes (DataLoader workers) never leave a half-written file, at worst one
    process's latest entries are lost and re-probed later. A cache file of an older format is rebuilt (with a
    warning); a file that is not a probe cache is refused (:class:`~vidrcnn.errors.OutputError`), never replaced.
    """

    def __init__(self, cache_file: str | os.PathLike | None = None, *, autosave: int = 500):
        self.cache_file = None if cache_file is None else os.fspath(cache_file)
        self.autosave = autosave
        self._entries: dict[str, dict] = {}
        self._unsaved = 0
        self.hits = self.misses = 0
        if self.cache_file and os.path.exists(self.cache_file):
            self._load()

    def _load(self) -> None:
        try:
            with open(self.cache_file, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            data, why = None, str(exc)
        else:
            why = "not a vidrcnn probe cache"
        if not isinstance(data, dict) or not isinstance(data.get("entries"), dict) or "version" not in data:
            # Not a cache this class wrote (those are written whole, by a rename): someone's file, kept.
            raise OutputError(self.cache_file, f"exists and is not a probe cache ({why}); refusing to replace it: "
                                               "delete it or choose another cache file")
        if data["version"] != _CACHE_VERSION:
            log.warning("probe cache %s has format %r, not %r; it will be rebuilt", self.cache_file,
                        data["version"], _CACHE_VERSION)
            return
        self._entries = data["entries"]

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: str | os.PathLike, *, verify: bool = False) -> VideoInfo:
        """Metadata of ``path``, probed at most once per (size, mtime) of the file.

        ``verify=True``: as ``probe_video(verify=True)``; a file verified once is not decoded again.
        """
        key = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(key)
            stamp = [st.st_size, st.st_mtime_ns]
        except OSError:
            stamp = None  # missing: not cached, probe_video raises the error
        entry = self._entries.get(key)
        fresh = stamp is not None and entry is not None and entry.get("stamp") == stamp
        if fresh and (not verify or "error" in entry or entry.get("verified")):
            self.hits += 1
            if "error" in entry:
                raise VideoDecodeError(path, entry["error"])
            return VideoInfo(**{**entry["info"], "notes": tuple(entry["info"].get("notes", ()))})
        self.misses += 1
        try:
            info = probe_video(path, verify=verify)
        except VideoDecodeError as exc:
            if stamp is not None:
                self._put(key, {"stamp": stamp, "error": exc.cause})
            raise
        if stamp is not None:
            self._put(key, {"stamp": stamp, "info": asdict(info), "verified": verify})
        return info

    def _put(self, key: str, entry: dict) -> None:
        self._entries[key] = entry
        self._unsaved += 1
        if self.autosave and self._unsaved >= self.autosave:
            self.save()

    def save(self) -> None:
        """Write the cache file now (no-op without a file or without new entries)."""
        if not self.cache_file or not self._unsaved:
            return
        folder = os.path.dirname(os.path.abspath(self.cache_file))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".probe-", suffix=".json", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": _CACHE_VERSION, "entries": self._entries}, f)
            os.replace(tmp, self.cache_file)
        except BaseException:
            os.unlink(tmp)
            raise
        self._unsaved = 0

    def close(self) -> None:
        self.save()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
