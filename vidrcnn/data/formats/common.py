"""What every dataset format shares: the sample and split types, the directory index, UCF101's groups and the
checks every split passes (no leak between train and test, no empty set).

Groups: files named ``v_<Class>_g<NN>_c<MM>.<ext>`` carry UCF101's group; split k tests on groups 7(k-1)+1..7k,
groups above 21 always train. Other names get a pseudo-group 1..25 from a stable hash (MD5 of ``class/filename`` in
lower case, not Python's salted ``hash()``) and follow the same rule. Whatever the source, no group (class + group
number) may appear in both train and test, and no file may be in both: that leak inflates test accuracy, so it is
refused with a :class:`DatasetError`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from vidrcnn.errors import DatasetError

VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv"})
NUM_GROUPS = 25  # UCF101: 25 groups per class
GROUPS_PER_SPLIT = 7
# The extension is optional: a folder of extracted frames keeps the video's name without it.
_UCF_NAME = re.compile(r"^v_(?P<cls>.+)_g(?P<group>\d+)_c(?P<clip>\d+)(?:\.[^.]+)?$", re.IGNORECASE)


class Sample(NamedTuple):
    """One labelled video: its path (``root`` joined with the name found on disk) and 0-based class index."""

    path: str
    label: int


class Split(NamedTuple):
    """Train and test samples and the class names (``classes[label]``); ``missing``: annotated videos not found on
    disk, for the formats where that is normal (Kinetics: ``"<set> <label> <video>"`` each), else empty."""

    train: list[Sample]
    test: list[Sample]
    classes: list[str]
    missing: Sequence[str] = ()


class Format(NamedTuple):
    """A dataset format as :func:`vidrcnn.data.splits.build_split` asks it: ``detect(root, split_dir)`` names what
    marks the format there (for messages, e.g. ``"annotations/train.csv (Kinetics)"``) or is None;
    ``split(root, split_dir, split)`` reads the split (``split_dir`` None: the format's own place under ``root``)."""

    name: str
    detect: Callable[[str, str | None], str | None]
    split: Callable[[str, str | None, int], Split]


def parse_ucf_name(filename: str) -> tuple[str, int, int] | None:
    """``v_<Class>_g<NN>_c<MM>.ext`` -> ``(Class, NN, MM)``; None for other names."""
    m = _UCF_NAME.match(os.path.basename(filename))
    return None if m is None else (m["cls"], int(m["group"]), int(m["clip"]))


def ucf_test_groups(split: int) -> range:
    """The groups UCF101's split ``split`` (1, 2 or 3) tests on: 7(k-1)+1 .. 7k."""
    if split not in (1, 2, 3):
        raise ValueError(f"UCF101 has splits 1, 2 and 3, got {split}")
    return range(GROUPS_PER_SPLIT * (split - 1) + 1, GROUPS_PER_SPLIT * split + 1)


def stable_group(key: str) -> int:
    """A pseudo-group 1..25 for a file whose name carries none: stable across runs, machines and Python versions."""
    digest = hashlib.md5(key.lower().encode("utf-8")).hexdigest()
    return int(digest[:8], 16) % NUM_GROUPS + 1


def is_video(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


class DirIndex:
    """Case-insensitive lookup of relative paths under ``root``, listing each directory at most once."""

    def __init__(self, root: str):
        self.root = root
        self._listings: dict[str, tuple[set[str], dict[str, str]] | None] = {}

    def _listing(self, rel_dir: str) -> tuple[set[str], dict[str, str]] | None:
        if rel_dir not in self._listings:
            try:
                names = os.listdir(os.path.join(self.root, rel_dir) if rel_dir else self.root)
            except (FileNotFoundError, NotADirectoryError):
                self._listings[rel_dir] = None
            else:
                lower: dict[str, str] = {}
                for n in sorted(names):  # sorted: the same name wins a case clash on every machine
                    lower.setdefault(n.lower(), n)
                self._listings[rel_dir] = (set(names), lower)
        return self._listings[rel_dir]

    def resolve(self, rel: str) -> str | None:
        """The path as it is spelled on disk, relative to root; None if absent. An exact match wins over others."""
        parts = [p for p in re.split(r"[\\/]+", rel.strip()) if p and p != "."]
        found: list[str] = []
        for part in parts:
            listing = self._listing("/".join(found))
            if listing is None:
                return None
            exact, lower = listing
            name = part if part in exact else lower.get(part.lower())
            if name is None:
                return None
            found.append(name)
        return "/".join(found) if found else None


def read_lines(path: str) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-blank, non-comment lines; CRLF and BOM tolerated."""
    try:
        with open(path, encoding="utf-8-sig", newline=None) as f:
            text = f.read()
    except FileNotFoundError:
        raise DatasetError(path, "no such file") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(path, f"not a UTF-8 text file ({exc.reason})") from None
    return [(n, s.strip()) for n, s in enumerate(text.splitlines(), 1) if s.strip() and not s.strip().startswith("#")]


def _group_key(sample: Sample) -> tuple[int, int] | None:
    parsed = parse_ucf_name(sample.path)
    return None if parsed is None else (sample.label, parsed[1])


def check_no_leak(train: Iterable[Sample], test: Iterable[Sample], where: str | os.PathLike) -> None:
    """Raise :class:`DatasetError` if a file, or a UCF101 group (class + group number), is in both sets."""
    train, test = list(train), list(test)
    train_paths = {os.path.normcase(os.path.abspath(s.path)) for s in train}
    for s in test:
        if os.path.normcase(os.path.abspath(s.path)) in train_paths:
            raise DatasetError(where, f"{s.path} is in both the train and the test set")
    train_groups = {k for k in map(_group_key, train) if k is not None}
    for s in test:
        key = _group_key(s)
        if key is not None and key in train_groups:
            raise DatasetError(
                where,
                f"group g{key[1]:02d} of class {key[0]} is in both train and test (e.g. {s.path}): clips of one group "
                "share actor and background, so the test accuracy would be inflated",
            )


def require_nonempty(split: Split, where: str | os.PathLike) -> Split:
    for name, samples in (("train", split.train), ("test", split.test)):
        if not samples:
            raise DatasetError(where, f"the {name} set is empty")
    return split


def split_by_group(root: str, items: Sequence[tuple[str, str, int]], split: int) -> tuple[list[Sample], list[Sample]]:
    """items: (relative path, key for the stable hash, label) -> (train, test) by UCF group or pseudo-group."""
    tested = ucf_test_groups(split)
    train, test = [], []
    for rel, hash_key, label in items:
        parsed = parse_ucf_name(rel)
        group = parsed[1] if parsed is not None else stable_group(hash_key)
        (test if group in tested else train).append(Sample(os.path.join(root, rel), label))
    return train, test
