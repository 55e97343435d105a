"""Something-Something V2 from its JSON annotations, read as released.

Annotations (``data.split_dir``, else ``root`` or ``root/labels``): ``something-something-v2-labels.json``
(template -> class id, ids as strings, 174 classes) and ``something-something-v2-{train,validation}.json``, lists of
``{"id", "label", "template", "placeholders"}`` (the test list has ids only: its labels were withheld, so the
validation set is the test split for reporting). The class of an entry is its template with the ``[`` ``]`` of its
placeholders removed, looked up in the labels file exactly, as the release's own scripts do; the classes are ordered
by id. Videos: ``<id>.webm`` (VP9) under ``root``.

Every video is shipped, so an entry whose video is missing, an entry without an id or template, and a template not
in the labels file are refused with a :class:`DatasetError` naming the file and the entry.
"""

from __future__ import annotations

import json
import os

from vidrcnn.data.formats.common import DirIndex, Format, Sample, Split, check_no_leak, require_nonempty
from vidrcnn.errors import DatasetError

LABELS = "something-something-v2-labels.json"
LISTS = {"train": "something-something-v2-train.json", "test": "something-something-v2-validation.json"}


def annotation_dir(root: str | os.PathLike, split_dir: str | os.PathLike | None) -> str | None:
    """The folder holding the labels file (``split_dir``, else ``root`` or ``root/labels``), or None."""
    candidates = [split_dir] if split_dir is not None else [root, os.path.join(os.fspath(root), "labels")]
    return next((os.fspath(c) for c in candidates if os.path.isfile(os.path.join(c, LABELS))), None)


def detect(root: str, split_dir: str | None) -> str | None:
    """Something-Something V2's labels file in ``split_dir``, or in ``root`` or ``root/labels``."""
    return f"{LABELS} (Something-Something V2)" if annotation_dir(root, split_dir) is not None else None


def class_of(template: str) -> str:
    """``"Putting [something] on [something]"`` -> ``"Putting something on something"`` (the release's rule)."""
    return template.replace("[", "").replace("]", "")


def _load(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DatasetError(path, "no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"not valid JSON ({exc})") from None


def read_labels(path: str) -> list[str]:
    """The class names ordered by their id (0..N-1, each once)."""
    labels = _load(path)
    if not isinstance(labels, dict) or not labels:
        raise DatasetError(path, "expected an object of template -> id")
    by_id: dict[int, str] = {}
    for name, value in labels.items():
        if not str(value).isdigit():
            raise DatasetError(path, f"class {name!r}: id {value!r} is not a number")
        if int(value) in by_id:
            raise DatasetError(path, f"id {value} is given to {by_id[int(value)]!r} and to {name!r}")
        by_id[int(value)] = name
    if sorted(by_id) != list(range(len(by_id))):
        raise DatasetError(path, f"ids must run 0..{len(by_id) - 1} without gaps")
    return [by_id[i] for i in range(len(by_id))]


def split_ssv2(root: str | os.PathLike, split_dir: str | os.PathLike | None = None) -> Split:
    """Train and validation samples (as test) and the classes ordered by id."""
    root = os.fspath(root)
    folder = annotation_dir(root, split_dir)
    if folder is None:
        raise DatasetError(split_dir or root, f"no {LABELS} here")
    classes = read_labels(os.path.join(folder, LABELS))
    label_of = {c: i for i, c in enumerate(classes)}
    index = DirIndex(root)
    sets: dict[str, list] = {}
    for which, name in LISTS.items():
        path = os.path.join(folder, name)
        entries = _load(path)
        if not isinstance(entries, list):
            raise DatasetError(path, "expected a list of entries")
        sets[which] = []
        for i, entry in enumerate(entries):
            where = f"entry {i}" + (f" (id {entry.get('id')})" if isinstance(entry, dict) and "id" in entry else "")
            if not isinstance(entry, dict) or not str(entry.get("id", "")).strip() or "template" not in entry:
                raise DatasetError(path, f"{where}: expected an object with an id and a template")
            cls = class_of(str(entry["template"]))
            if cls not in label_of:
                raise DatasetError(path, f"{where}: template {entry['template']!r} ({cls!r}) is not in {LABELS}")
            on_disk = index.resolve(f"{entry['id']}.webm")
            if on_disk is None:
                raise DatasetError(path, f"{where}: {entry['id']}.webm is not under {root}")
            sets[which].append(Sample(os.path.join(root, on_disk), label_of[cls]))
    check_no_leak(sets["train"], sets["test"], os.path.join(folder, LISTS["test"]))
    return require_nonempty(Split(sets["train"], sets["test"], classes), folder)


def _split(root: str, split_dir: str | None, split: int) -> Split:
    return split_ssv2(root, split_dir)  # one split: train, and validation as the test set (``split`` is UCF101's)


FORMAT = Format("ssv2", detect, _split)

__all__ = ["FORMAT", "LABELS", "LISTS", "annotation_dir", "class_of", "detect", "read_labels", "split_ssv2"]
