"""Find video files and check that each one decodes: the offline check to run before training."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vidrcnn.errors import VideoDecodeError
from vidrcnn.io.base import VideoInfo
from vidrcnn.io.probe import ProbeCache

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ts")


def find_videos(root: str | os.PathLike, extensions: Iterable[str] = VIDEO_EXTENSIONS) -> list[Path]:
    """Video files under ``root`` (recursively, by extension, case-insensitive), sorted; a file root is itself."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise VideoDecodeError(root, "no such file or directory")
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in exts and not p.is_dir())


@dataclass(frozen=True)
class ScanResult:
    """One file's verdict: ``info`` when it is readable, else ``error`` (the cause)."""

    path: Path
    info: VideoInfo | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def scan_videos(paths: Iterable[str | os.PathLike], *, cache: ProbeCache | None = None,
                verify: bool = True) -> Iterator[ScanResult]:
    """Check each file: demux it and, with ``verify`` (the default), decode every frame; results are cached."""
    cache = cache if cache is not None else ProbeCache(None)
    for path in paths:
        try:
            yield ScanResult(Path(path), cache.get(path, verify=verify), None)
        except VideoDecodeError as exc:
            yield ScanResult(Path(path), None, exc.cause)
