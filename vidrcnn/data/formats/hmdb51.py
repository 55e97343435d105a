"""HMDB51's official splits, read as the release ships them.

Layout: ``root/<class>/<video>.avi`` and the split folder ``testTrainMulti_7030_splits/`` (in ``root``, or given as
``split_dir``) with one file per class and split, ``<class>_test_split<k>.txt`` (k = 1, 2, 3), lines
``<video>.avi <n>``: 1 = train, 2 = test, 0 = not used in this split. The classes are the names of the split files
(51 in the release), sorted; their folders are matched case-insensitively. The release's quirks parse: trailing
spaces, CRLF line ends, and file names with ``&``, ``(``, ``)``, ``!``, ``;`` and a leading ``#`` (which are names
here, never comments).

HMDB51 has no groups (its clips of one source video share a name prefix, and the release's splits keep them
together): the only leak check that applies is that no video is in both sets, and none is listed twice. A video
marked 1 or 2 and missing on disk is a :class:`DatasetError` naming the split file, the line and the path; a video
marked 0 is not looked for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from vidrcnn.data.formats.common import DirIndex, Format, Sample, Split, check_no_leak, require_nonempty
from vidrcnn.errors import DatasetError

SPLIT_FOLDER = "testTrainMulti_7030_splits"
_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>[123])\.txt$")
TRAIN, TEST, UNUSED = 1, 2, 0


def split_files(split_dir: str | os.PathLike, split: int) -> dict[str, str]:
    """``{class: path of its split-k file}`` in ``split_dir``, sorted by class; empty when there is none."""
    try:
        names = os.listdir(split_dir)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    found = {}
    for name in names:
        m = _SPLIT_FILE.match(name)
        if m and int(m["k"]) == split:
            found[m["cls"]] = os.path.join(split_dir, name)
    return dict(sorted(found.items()))


def detect(root: str, split_dir: str | None) -> str | None:
    """HMDB51's split files in ``split_dir``; without one, the folder ``root/testTrainMulti_7030_splits``."""
    if split_dir is not None:
        found = any(split_files(split_dir, k) for k in (1, 2, 3))
        return "<class>_test_split<k>.txt files (HMDB51)" if found else None
    return f"{SPLIT_FOLDER}/ (HMDB51)" if os.path.isdir(os.path.join(root, SPLIT_FOLDER)) else None


def _lines(path: str) -> list[tuple[int, str]]:
    # Not common.read_lines: a leading '#' is part of a file name here.
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(path, f"not a UTF-8 text file ({exc.reason})") from None
    return [(n, s.strip()) for n, s in enumerate(text.splitlines(), 1) if s.strip()]


def split_hmdb51(root: str | os.PathLike, split_dir: str | os.PathLike | None = None, split: int = 1) -> Split:
    """Train and test :class:`~vidrcnn.data.formats.common.Sample` lists and the 51 class names of split ``split``."""
    root = os.fspath(root)
    split_dir = os.fspath(split_dir) if split_dir is not None else os.path.join(root, SPLIT_FOLDER)
    files = split_files(split_dir, split)
    if not files:
        raise DatasetError(split_dir, f"no <class>_test_split{split}.txt files (HMDB51 ships splits 1, 2 and 3)")
    index = DirIndex(root)
    train, test = [], []
    seen: dict[str, tuple[str, int]] = {}
    for label, (cls, path) in enumerate(files.items()):
        folder = index.resolve(cls)
        for n, line in _lines(path):
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DatasetError(path, f"line {n}: expected '<video> <0|1|2>' (0 unused, 1 train, 2 test), got "
                                         f"{line!r}")
            name, mark = parts[0], int(parts[1])
            if mark == UNUSED:
                continue
            if name in seen:
                raise DatasetError(path, f"line {n}: {name} is listed again (first in {seen[name][0]}, line "
                                         f"{seen[name][1]}); each video once per split")
            seen[name] = (os.path.basename(path), n)
            on_disk = None if folder is None else index.resolve(f"{folder}/{name}")
            if on_disk is None:
                raise DatasetError(path, f"line {n}: {cls}/{name} is listed but not found under {root}")
            (train if mark == TRAIN else test).append(Sample(os.path.join(root, on_disk), label))
    check_no_leak(train, test, split_dir)
    return require_nonempty(Split(train, test, list(files)), split_dir)


def write_split_files(split_dir: str | os.PathLike, marks: Mapping[str, Sequence[Sequence[tuple[str, int]]]]) -> None:
    """Write ``<class>_test_split<k>.txt`` for each class, lines ``<video> <n> `` with the release's trailing space:
    ``marks[class][k - 1]`` lists ``(video file name, 0|1|2)`` for split k."""
    os.makedirs(split_dir, exist_ok=True)
    for cls, splits in marks.items():
        for k, rows in enumerate(splits, 1):
            with open(os.path.join(split_dir, f"{cls}_test_split{k}.txt"), "w", encoding="utf-8", newline="") as f:
                f.writelines(f"{name} {mark} \n" for name, mark in rows)


FORMAT = Format("hmdb51", detect, split_hmdb51)

__all__ = ["FORMAT", "SPLIT_FOLDER", "detect", "split_files", "split_hmdb51", "write_split_files"]
