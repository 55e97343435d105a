"""UCF101: class folders, split by group or by the official lists.

Layout: ``root/<ClassName>/<video files>``. The official lists (``classInd.txt``, ``trainlist0k.txt``,
``testlist0k.txt``) are read from ``data.split_dir``, or from ``root/ucfTrainTestlist`` where UCF101's archive and
:mod:`vidrcnn.data.synthetic` put them; without them the folders alone are split by group (:mod:`.common`).

Speed: listing a 13,000-video tree costs one directory listing of ``root`` plus one per class folder; files named
by lists are resolved against those listings (case-insensitively, since UCF101's lists and file names disagree in
case, e.g. ``HandstandPushups/v_HandStandPushups_g01_c01.avi`` is ``v_HandstandPushups_g01_c01.avi`` on disk), never
by a ``stat`` per file.
"""

from __future__ import annotations

import os
import re

from vidrcnn.data.formats.common import (
    DirIndex,
    Format,
    Sample,
    Split,
    check_no_leak,
    is_video,
    read_lines,
    require_nonempty,
    split_by_group,
    ucf_test_groups,
)
from vidrcnn.errors import DatasetError

SPLIT_FOLDER = "ucfTrainTestlist"


def _class_sort_key(name: str) -> tuple[str, str]:
    # UCF101's classInd orders case-insensitively (JumpingJack before JumpRope); ties broken by exact name.
    return name.lower(), name


def scan_folders(root: str | os.PathLike) -> dict[str, list[str]]:
    """``{class folder: sorted video file names}`` for every folder under ``root`` holding at least one video.

    One directory listing per folder; hidden entries and non-video files are ignored.
    """
    root = os.fspath(root)
    out: dict[str, list[str]] = {}
    try:
        entries = sorted(os.scandir(root), key=lambda e: _class_sort_key(e.name))
    except (FileNotFoundError, NotADirectoryError):
        raise DatasetError(root, "not a directory") from None
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        with os.scandir(entry.path) as it:
            videos = sorted((e.name for e in it if is_video(e.name) and e.is_file()), key=str.lower)
        if videos:
            out[entry.name] = videos
    return out


def split_folders(root: str | os.PathLike, split: int = 1) -> Split:
    """Split ``root/<Class>/<videos>`` by group (UCF101 names) or stable hash (other names); see the module doc."""
    root = os.fspath(root)
    folders = scan_folders(root)
    if not folders:
        raise DatasetError(root, "no class folders with video files found")
    classes = list(folders)
    items = [(f"{c}/{name}", f"{c}/{name}", label) for label, c in enumerate(classes) for name in folders[c]]
    train, test = split_by_group(root, items, split)
    check_no_leak(train, test, root)
    return require_nonempty(Split(train, test, classes), root)


def read_class_index(path: str | os.PathLike) -> list[str]:
    """Class names from UCF101's ``classInd.txt`` (``<1-based index> <name>`` per line), in label order."""
    path = os.fspath(path)
    by_index: dict[int, str] = {}
    line_of: dict[str, int] = {}
    for n, line in read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetError(path, f"line {n}: expected '<index> <ClassName>', got {line!r}")
        idx = int(parts[0])
        if idx in by_index:
            raise DatasetError(path, f"line {n}: class index {idx} appears twice")
        if parts[1] in line_of:
            raise DatasetError(path, f"line {n}: class {parts[1]!r} is listed twice (also on line {line_of[parts[1]]})")
        by_index[idx], line_of[parts[1]] = parts[1], n
    if sorted(by_index) != list(range(1, len(by_index) + 1)):
        raise DatasetError(path, f"class indices must run 1..N without gaps (1-based), got {sorted(by_index)[:5]}...")
    classes = [by_index[i] for i in range(1, len(by_index) + 1)]
    lowered = [c.lower() for c in classes]
    dupes = sorted({c for c in lowered if lowered.count(c) > 1})
    if dupes:
        raise DatasetError(path, f"class names differ only in case: {[c for c in classes if c.lower() in dupes]} "
                                 "(class folders are matched case-insensitively, so they would be one class)")
    return classes


def _read_official_list(path: str, root: str, classes: list[str], index: DirIndex, labelled: bool) -> list[Sample]:
    label_of = {c.lower(): i for i, c in enumerate(classes)}
    samples = []
    for n, line in read_lines(path):
        parts = line.split()
        if len(parts) not in ((2,) if labelled else (1, 2)):  # a labelled test list is tolerated
            raise DatasetError(path, f"line {n}: expected '<Class>/<file>{' <label>' if labelled else ''}'")
        rel = parts[0]
        folder = re.split(r"[\\/]", rel, maxsplit=1)[0]
        if folder.lower() not in label_of:
            raise DatasetError(path, f"line {n}: class folder {folder!r} of {rel} is not in classInd.txt")
        label = label_of[folder.lower()]
        if len(parts) == 2:  # train lists carry a 1-based label; it must agree with the folder
            if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(classes):
                raise DatasetError(path, f"line {n}: label {parts[1]!r} is not a class index 1..{len(classes)}")
            if int(parts[1]) - 1 != label:
                raise DatasetError(
                    path, f"line {n}: label {parts[1]} ({classes[int(parts[1]) - 1]}) disagrees with folder {folder}"
                )
        on_disk = index.resolve(rel)
        if on_disk is None:
            raise DatasetError(path, f"line {n}: {rel} is listed but not found under {root}")
        samples.append(Sample(os.path.join(root, on_disk), label))
    return samples


def split_official(root: str | os.PathLike, split_dir: str | os.PathLike, split: int = 1) -> Split:
    """UCF101's own lists: ``classInd.txt`` (1-based), ``trainlist0k.txt`` (with labels), ``testlist0k.txt`` (without).

    Files are resolved case-insensitively; a listed file missing on disk is a :class:`DatasetError` naming the list
    file, the line and the path (never silently dropped).
    """
    root, split_dir = os.fspath(root), os.fspath(split_dir)
    if not os.path.isdir(split_dir):
        raise DatasetError(split_dir, "split folder not found")
    classes = read_class_index(os.path.join(split_dir, "classInd.txt"))
    train_list = os.path.join(split_dir, f"trainlist{split:02d}.txt")
    test_list = os.path.join(split_dir, f"testlist{split:02d}.txt")
    for f in (train_list, test_list):
        if not os.path.isfile(f):
            raise DatasetError(f, f"no list for split {split} (UCF101 ships splits 1, 2 and 3)")
    index = DirIndex(root)
    train = _read_official_list(train_list, root, classes, index, labelled=True)
    test = _read_official_list(test_list, root, classes, index, labelled=False)
    if not test:  # e.g. a dataset with fewer groups than UCF101's 25: split 3 tests on groups 15-21
        groups = ucf_test_groups(split)
        raise DatasetError(test_list, f"lists no video: split {split} (test groups {groups.start}-{groups.stop - 1}) "
                                      "has no test set here; choose another data.split")
    check_no_leak(train, test, test_list)
    return require_nonempty(Split(train, test, classes), split_dir)


def detect(root: str, split_dir: str | None) -> str | None:
    """UCF101's lists: ``classInd.txt`` in ``split_dir``, or in ``root/ucfTrainTestlist``."""
    if split_dir is not None:
        return "classInd.txt (UCF101)" if os.path.isfile(os.path.join(split_dir, "classInd.txt")) else None
    return f"{SPLIT_FOLDER}/ (UCF101)" if os.path.isfile(os.path.join(root, SPLIT_FOLDER, "classInd.txt")) else None


def split_ucf101(root: str | os.PathLike, split_dir: str | os.PathLike | None = None, split: int = 1) -> Split:
    """The official lists of split ``split`` from ``split_dir`` (None: ``root/ucfTrainTestlist``)."""
    return split_official(root, split_dir if split_dir is not None else os.path.join(root, SPLIT_FOLDER), split)


FORMAT = Format("ucf101", detect, split_ucf101)
