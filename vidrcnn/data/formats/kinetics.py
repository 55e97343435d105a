"""Kinetics (400/600/700) from its CSV annotations and the videos as the common downloaders store them.

Annotations (``data.split_dir``, or ``root/annotations``): ``train.csv`` and ``validate.csv`` (or ``val.csv``), with
the header ``label,youtube_id,time_start,time_end,split[,is_cc]``. The classes are the sorted labels of
``train.csv``: the class list comes from the annotations, never from the videos found, so a class whose videos are
all gone is still a class. The validation set is the test split for reporting (the test labels were withheld).

Videos: ``<youtube_id>_<time_start:06d>_<time_end:06d>.<ext>`` anywhere under ``root`` (``<split>/<label>/...`` as
the ActivityNet crawler stores them, or flat as the CVDF downloads are), found by name in one walk of the tree.

Missing videos are normal for Kinetics (some per cent have gone from the web): they are counted and returned in
:attr:`~vidrcnn.data.formats.common.Split.missing` (``tools/train.py`` writes them to ``missing_videos.txt`` in the run
folder and logs the count), and the run goes on. A malformed line is a :class:`DatasetError` with file and line.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence

from vidrcnn.data.formats.common import Format, Sample, Split, check_no_leak, is_video, require_nonempty
from vidrcnn.errors import DatasetError

ANNOTATIONS = "annotations"
HEADER = ("label", "youtube_id", "time_start", "time_end", "split")
_VAL_NAMES = ("validate.csv", "val.csv")


def annotation_dir(root: str | os.PathLike, split_dir: str | os.PathLike | None) -> str | None:
    """The folder holding Kinetics' ``train.csv`` (``split_dir``, else ``root/annotations``), or None if it has none.
    Its header is checked when it is read: a wrong one is reported, never taken for another format."""
    folder = os.fspath(split_dir) if split_dir is not None else os.path.join(os.fspath(root), ANNOTATIONS)
    return folder if os.path.isfile(os.path.join(folder, "train.csv")) else None


def detect(root: str, split_dir: str | None) -> str | None:
    """Kinetics' ``train.csv`` in ``split_dir``, or in ``root/annotations``."""
    if annotation_dir(root, split_dir) is None:
        return None
    return "train.csv (Kinetics)" if split_dir is not None else f"{ANNOTATIONS}/train.csv (Kinetics)"


def _read_csv(path: str) -> list[tuple[int, str, str]]:
    """(line, label, video key) per row."""
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header[:5]) != HEADER:
            raise DatasetError(path, f"line 1: expected the header {','.join(HEADER)}[,is_cc], got {header}")
        for row in reader:
            n = reader.line_num
            if not row or not "".join(row).strip():
                continue
            if len(row) not in (5, 6):
                raise DatasetError(path, f"line {n}: expected {len(HEADER)} or 6 fields, got {len(row)}: {row}")
            label, yid, start, end = (x.strip() for x in row[:4])
            try:
                key = f"{yid}_{int(float(start)):06d}_{int(float(end)):06d}"
            except ValueError:
                raise DatasetError(path, f"line {n}: time_start and time_end must be seconds, got {start!r}, {end!r}"
                                   ) from None
            if not label or not yid:
                raise DatasetError(path, f"line {n}: an empty label or youtube_id")
            rows.append((n, label, key))
    return rows


def _index_videos(root: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != ANNOTATIONS)
        for name in sorted(files):
            if is_video(name):
                found.setdefault(os.path.splitext(name)[0], os.path.join(folder, name))
    return found


def split_kinetics(root: str | os.PathLike, split_dir: str | os.PathLike | None = None) -> Split:
    """Train and validation samples, the classes, and the annotated videos not found (``Split.missing``)."""
    root = os.fspath(root)
    folder = annotation_dir(root, split_dir)
    if folder is None:
        raise DatasetError(split_dir or os.path.join(root, ANNOTATIONS), "no Kinetics train.csv (header "
                           f"{','.join(HEADER)}) here")
    train_csv = os.path.join(folder, "train.csv")
    val_csv = next((os.path.join(folder, n) for n in _VAL_NAMES if os.path.isfile(os.path.join(folder, n))), None)
    if val_csv is None:
        raise DatasetError(folder, "no validate.csv or val.csv beside train.csv")
    train_rows, val_rows = _read_csv(train_csv), _read_csv(val_csv)
    classes = sorted({label for _, label, _ in train_rows})
    label_of = {c: i for i, c in enumerate(classes)}
    videos = _index_videos(root)
    sets: dict[str, list] = {"train": [], "test": []}
    missing: list[str] = []
    seen: dict[str, tuple[str, int]] = {}
    for which, path, rows in (("train", train_csv, train_rows), ("test", val_csv, val_rows)):
        for n, label, key in rows:
            if label not in label_of:
                raise DatasetError(path, f"line {n}: label {label!r} is not among the {len(classes)} classes of "
                                         "train.csv")
            if key in seen:
                raise DatasetError(path, f"line {n}: {key} is annotated again (first in {seen[key][0]}, line "
                                         f"{seen[key][1]})")
            seen[key] = (os.path.basename(path), n)
            if key in videos:
                sets[which].append(Sample(videos[key], label_of[label]))
            else:
                missing.append(f"{which} {label} {key}")
    check_no_leak(sets["train"], sets["test"], val_csv)
    return require_nonempty(Split(sets["train"], sets["test"], classes, missing), folder)


def write_annotations(folder: str | os.PathLike, rows: Mapping[str, Sequence[tuple[str, str, int, int]]]) -> None:
    """Write ``train.csv`` / ``validate.csv`` as released: ``rows[name]`` lists ``(label, youtube_id, start, end)``
    (the split column is the file's, ``is_cc`` 0)."""
    os.makedirs(folder, exist_ok=True)
    for name, items in rows.items():
        split = {"train.csv": "train", "validate.csv": "val", "val.csv": "val", "test.csv": "test"}[name]
        with open(os.path.join(folder, name), "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow([*HEADER, "is_cc"])
            for label, yid, start, end in items:
                w.writerow([label, yid, start, end, split, 0])


def video_name(youtube_id: str, start: int, end: int, ext: str = ".mp4") -> str:
    return f"{youtube_id}_{start:06d}_{end:06d}{ext}"


def _split(root: str, split_dir: str | None, split: int) -> Split:
    return split_kinetics(root, split_dir)  # one split: train, and validation as the test set (``split`` is UCF101's)


FORMAT = Format("kinetics", detect, _split)

__all__ = ["FORMAT", "annotation_dir", "detect", "split_kinetics", "video_name", "write_annotations"]
