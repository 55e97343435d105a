"""Plain annotation lists, as other toolkits write them, named by ``data.list_file`` (never guessed from a folder).

A line is ``relative/path label`` (0-based integer labels, paths relative to ``root``, the label the last field so
paths may hold spaces) or, for folders of extracted frames, ``folder num_frames label`` (the frame count is checked).
One list is split like a folder (by UCF101 group or stable hash, :mod:`.common`); a pair ``(train_list, test_list)``
is used as given. ``data.classes_file`` names the labels, one per line; without it they are named after their folders.
Files are resolved case-insensitively; a missing file is a :class:`DatasetError` naming the list, the line and the
path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from vidrcnn.data.formats.common import (
    DirIndex,
    Sample,
    Split,
    check_no_leak,
    read_lines,
    require_nonempty,
    split_by_group,
)
from vidrcnn.errors import DatasetError, VidrcnnError
from vidrcnn.io.frames import FrameFolderDecoder


def read_list_file(path: str | os.PathLike, root: str | os.PathLike) -> list[Sample]:
    """A plain annotation list: ``relative/path label`` per line, label a 0-based integer, path relative to ``root``.

    Paths may contain spaces (the label is the last field); blank lines and ``#`` comments are skipped. Paths are
    resolved case-insensitively; a missing file is a :class:`DatasetError` naming the list, the line and the path.
    """
    path, root = os.fspath(path), os.fspath(root)
    index = DirIndex(root)
    samples = []
    seen: dict[str, tuple[int, int]] = {}  # file -> (line, label)
    for n, line in read_lines(path):
        frames = _frame_folder_entry(line, root, index)
        parts = line.rsplit(maxsplit=1)
        if frames is not None:  # 'folder num_frames label', as frame-folder toolkits write their lists
            rel, count, label = frames
            _check_frame_count(path, n, os.path.join(root, index.resolve(rel) or rel), count)
        elif len(parts) != 2 or not parts[1].isdigit():
            raise DatasetError(path, f"line {n}: expected '<relative/path> <label>' (or '<frame folder> <num_frames> "
                                     f"<label>') with a 0-based label, got {line!r}")
        else:
            rel, label = parts[0], int(parts[1])
        if os.path.isabs(rel):
            parent = DirIndex(os.path.dirname(rel)).resolve(os.path.basename(rel))
            on_disk = None if parent is None else os.path.join(os.path.dirname(rel), parent)
        else:
            found = index.resolve(rel)
            on_disk = None if found is None else os.path.join(root, found)
        if on_disk is None:
            raise DatasetError(path, f"line {n}: {rel} is listed but not found under {root}")
        key = os.path.normcase(os.path.abspath(on_disk))
        if key in seen:
            first, first_label = seen[key]
            what = "again" if first_label == label else f"with label {label}, and with label {first_label}"
            raise DatasetError(path, f"line {n}: {rel} is listed {what} on line {first}; each video once")
        seen[key] = (n, label)
        samples.append(Sample(on_disk, label))
    if not samples:
        raise DatasetError(path, "the list is empty")
    return samples


def _frame_folder_entry(line: str, root: str, index: DirIndex) -> tuple[str, int, int] | None:
    """``(folder, num_frames, label)`` when ``line`` is ``folder num_frames label`` and ``folder`` is a directory."""
    parts = line.rsplit(maxsplit=2)
    if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    found = index.resolve(parts[0]) if not os.path.isabs(parts[0]) else parts[0]
    full = None if found is None else (found if os.path.isabs(found) else os.path.join(root, found))
    return (parts[0], int(parts[1]), int(parts[2])) if full is not None and os.path.isdir(full) else None


def _check_frame_count(path: str, n: int, folder: str, count: int) -> None:
    try:
        found = FrameFolderDecoder(folder).num_frames
    except VidrcnnError as exc:
        raise DatasetError(path, f"line {n}: {exc}") from None
    if found != count:
        raise DatasetError(path, f"line {n}: {folder} holds {found} frames, the list says {count}")


def read_classes_file(path: str | os.PathLike) -> list[str]:
    """Class names, one per line: line k (0-based, blank lines and ``#`` comments skipped) names label k."""
    path = os.fspath(path)
    names: list[str] = []
    line_of: dict[str, int] = {}
    for n, line in read_lines(path):
        name = line.strip()
        if name in line_of:
            raise DatasetError(path, f"line {n}: class {name!r} is listed twice (also on line {line_of[name]})")
        line_of[name] = n
        names.append(name)
    if not names:
        raise DatasetError(path, "the classes file is empty")
    return names


def _check_labels(samples: Sequence[Sample], where: str, classes: Sequence[str] | None) -> None:
    """Labels index the classes: below ``len(classes)`` with a classes file; without one, every label 0..max must
    occur (a gap is a class with no video: a 1-based list, or a stray large label)."""
    labels = {s.label for s in samples}
    if classes is not None:
        bad = sorted(label for label in labels if label >= len(classes))
        if bad:
            example = next(s for s in samples if s.label == bad[0])
            raise DatasetError(where, f"label {bad[0]} (e.g. {example.path}) is out of range: the classes file names "
                                      f"{len(classes)} classes, labels 0..{len(classes) - 1}")
        return
    missing = sorted(set(range(max(labels) + 1)) - labels)
    if missing:
        hint = " (is the list 1-based? labels are 0-based)" if missing == [0] else ""
        shown = ", ".join(map(str, missing[:5])) + (f", ... ({len(missing)} in all)" if len(missing) > 5 else "")
        raise DatasetError(where, f"no video has label {shown}{hint}; labels must run 0..{max(labels)} without gaps, "
                                  "or name the classes in data.classes_file")


def _list_classes(samples: Sequence[Sample]) -> list[str]:
    # A label is named after the folder holding its files (``.../Class/file``) when all its files share one and no
    # other label uses it; otherwise every label is ``class_<k>`` (names must not mislead).
    folders: dict[int, set[str]] = {}
    for s in samples:
        folders.setdefault(s.label, set()).add(os.path.basename(os.path.dirname(s.path)))
    count = max(folders) + 1
    names = [next(iter(folders[k])) if len(folders.get(k, ())) == 1 else "" for k in range(count)]
    if "" in names or len(set(names)) != count:
        return [f"class_{k:03d}" for k in range(count)]
    return names


def split_list(root: str | os.PathLike, list_file, split: int = 1,
               classes_file: str | os.PathLike | None = None) -> Split:
    """Samples from annotation list(s): one list is split by group/hash as folders are; a pair is (train, test).
    ``classes_file`` (:func:`read_classes_file`) names the labels; without it they are named from the folders and
    must run 0..max without gaps."""
    root = os.fspath(root)
    if isinstance(list_file, (list, tuple)):
        if len(list_file) != 2:
            raise DatasetError(None, f"list_file must be one list or a (train, test) pair, got {len(list_file)}")
        train = read_list_file(list_file[0], root)
        test = read_list_file(list_file[1], root)
        where = list_file[1]
    else:
        samples = read_list_file(list_file, root)
        items = []
        for s in samples:
            rel = os.path.relpath(s.path, root)
            items.append((rel, rel.replace("\\", "/"), s.label))
        train, test = split_by_group(root, items, split)
        where = list_file
    check_no_leak(train, test, where)
    names = None if classes_file is None else read_classes_file(classes_file)
    _check_labels(train + test, os.fspath(where), names)
    classes = names if names is not None else _list_classes(train + test)
    return require_nonempty(Split(train, test, classes), where)
