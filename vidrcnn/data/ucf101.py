"""Train/test splits of UCF101-style clip folders: official split files, group splits, plain annotation lists.

Layout: ``root/<ClassName>/<video files>``. Three ways to get a split, tried in this order by :func:`build_split`:

1. ``list_file``: a plain annotation list, ``relative/path label`` per line (0-based integer labels, paths relative
   to ``root``), as other toolkits use. One list is split like a folder (below); a pair ``(train_list, test_list)``
   is used as given.
2. UCF101's official lists (``classInd.txt``, ``trainlist0k.txt``, ``testlist0k.txt``) in ``split_dir``, or in
   ``root/ucfTrainTestlist`` when ``split_dir`` is None and that folder exists (where UCF101's archive and
   :mod:`vidrcnn.data.synthetic` put them); or HMDB51's (``<class>_test_split<k>.txt``, :mod:`vidrcnn.data.hmdb51`)
   in ``split_dir`` or ``root/testTrainMulti_7030_splits``.
3. The folders alone: files named ``v_<Class>_g<NN>_c<MM>.<ext>`` are split by group exactly as UCF101 does (split k
   tests on groups 7(k-1)+1..7k, groups above 21 always train); other names get a pseudo-group 1..25 from a stable
   hash (MD5 of ``class/filename`` in lower case, not Python's salted ``hash()``) and follow the same rule.

Whatever the source, no group (class + group number, from the file name) may appear in both train and test, and no
file may be in both: that leak inflates test accuracy, so it is refused with a :class:`DatasetError`.

Speed: listing a 13,000-video tree costs one directory listing of ``root`` plus one per class folder; files named
by lists are resolved against those listings (case-insensitively, since UCF101's lists and file names disagree in
case, e.g. ``HandstandPushups/v_HandStandPushups_g01_c01.avi`` is ``v_HandstandPushups_g01_c01.avi`` on disk), never
by a ``stat`` per file.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from vidrcnn.errors import DatasetError, VidrcnnError

VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv"})
SPLIT_FOLDER = "ucfTrainTestlist"
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


def _is_video(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def _class_sort_key(name: str) -> tuple[str, str]:
    # UCF101's classInd orders case-insensitively (JumpingJack before JumpRope); ties broken by exact name.
    return name.lower(), name


class _DirIndex:
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


def _read_lines(path: str) -> list[tuple[int, str]]:
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


def _require_nonempty(split: Split, where: str | os.PathLike) -> Split:
    for name, samples in (("train", split.train), ("test", split.test)):
        if not samples:
            raise DatasetError(where, f"the {name} set is empty")
    return split


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
            videos = sorted((e.name for e in it if _is_video(e.name) and e.is_file()), key=str.lower)
        if videos:
            out[entry.name] = videos
    return out


def _split_by_group(root: str, items: Sequence[tuple[str, str, int]], split: int) -> tuple[list[Sample], list[Sample]]:
    """items: (relative path, key for the stable hash, label) -> (train, test) by UCF group or pseudo-group."""
    tested = ucf_test_groups(split)
    train, test = [], []
    for rel, hash_key, label in items:
        parsed = parse_ucf_name(rel)
        group = parsed[1] if parsed is not None else stable_group(hash_key)
        (test if group in tested else train).append(Sample(os.path.join(root, rel), label))
    return train, test


def split_folders(root: str | os.PathLike, split: int = 1) -> Split:
    """Split ``root/<Class>/<videos>`` by group (UCF101 names) or stable hash (other names); see the module doc."""
    root = os.fspath(root)
    folders = scan_folders(root)
    if not folders:
        raise DatasetError(root, "no class folders with video files found")
    classes = list(folders)
    items = [(f"{c}/{name}", f"{c}/{name}", label) for label, c in enumerate(classes) for name in folders[c]]
    train, test = _split_by_group(root, items, split)
    check_no_leak(train, test, root)
    return _require_nonempty(Split(train, test, classes), root)


def read_class_index(path: str | os.PathLike) -> list[str]:
    """Class names from UCF101's ``classInd.txt`` (``<1-based index> <name>`` per line), in label order."""
    path = os.fspath(path)
    by_index: dict[int, str] = {}
    line_of: dict[str, int] = {}
    for n, line in _read_lines(path):
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


def _read_official_list(path: str, root: str, classes: list[str], index: _DirIndex, labelled: bool) -> list[Sample]:
    label_of = {c.lower(): i for i, c in enumerate(classes)}
    samples = []
    for n, line in _read_lines(path):
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
    index = _DirIndex(root)
    train = _read_official_list(train_list, root, classes, index, labelled=True)
    test = _read_official_list(test_list, root, classes, index, labelled=False)
    check_no_leak(train, test, test_list)
    return _require_nonempty(Split(train, test, classes), split_dir)


def read_list_file(path: str | os.PathLike, root: str | os.PathLike) -> list[Sample]:
    """A plain annotation list: ``relative/path label`` per line, label a 0-based integer, path relative to ``root``.

    Paths may contain spaces (the label is the last field); blank lines and ``#`` comments are skipped. Paths are
    resolved case-insensitively; a missing file is a :class:`DatasetError` naming the list, the line and the path.
    """
    path, root = os.fspath(path), os.fspath(root)
    index = _DirIndex(root)
    samples = []
    seen: dict[str, tuple[int, int]] = {}  # file -> (line, label)
    for n, line in _read_lines(path):
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
            parent = _DirIndex(os.path.dirname(rel)).resolve(os.path.basename(rel))
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


def _frame_folder_entry(line: str, root: str, index: _DirIndex) -> tuple[str, int, int] | None:
    """``(folder, num_frames, label)`` when ``line`` is ``folder num_frames label`` and ``folder`` is a directory."""
    parts = line.rsplit(maxsplit=2)
    if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    found = index.resolve(parts[0]) if not os.path.isabs(parts[0]) else parts[0]
    full = None if found is None else (found if os.path.isabs(found) else os.path.join(root, found))
    return (parts[0], int(parts[1]), int(parts[2])) if full is not None and os.path.isdir(full) else None


def _check_frame_count(path: str, n: int, folder: str, count: int) -> None:
    from vidrcnn.io.frames import FrameFolderDecoder

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
    for n, line in _read_lines(path):
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
        train, test = _split_by_group(root, items, split)
        where = list_file
    check_no_leak(train, test, where)
    names = None if classes_file is None else read_classes_file(classes_file)
    _check_labels(train + test, os.fspath(where), names)
    classes = names if names is not None else _list_classes(train + test)
    return _require_nonempty(Split(train, test, classes), where)


def build_split(
    root: str | os.PathLike,
    *,
    split_dir: str | os.PathLike | None = None,
    split: int = 1,
    list_file: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    classes_file: str | os.PathLike | None = None,
) -> Split:
    """Train/test samples and class names of the dataset in ``root`` (see the module doc for the three sources).

    ``split`` (1, 2 or 3) picks UCF101's split: the official list pair, or the groups tested on. Raises
    :class:`DatasetError` for a malformed or inconsistent dataset (missing listed file, leaking group, empty set).
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DatasetError(root, "dataset root is not a directory")
    if split not in (1, 2, 3):
        raise DatasetError(root, f"split must be 1, 2 or 3 (UCF101's splits), got {split}")
    if list_file is not None:
        if split_dir is not None:
            raise DatasetError(root, "give either split_dir (UCF101 lists) or list_file (annotation list), not both")
        return split_list(root, list_file, split, classes_file)
    if classes_file is not None:
        raise DatasetError(classes_file, "a classes file names the labels of a list_file; without one it does not apply")
    from vidrcnn.data import hmdb51, kinetics, ssv2

    if split_dir is not None and hmdb51.is_hmdb51_split_dir(split_dir):
        return hmdb51.split_hmdb51(root, split_dir, split)
    if split_dir is not None and kinetics.annotation_dir(root, split_dir):
        return kinetics.split_kinetics(root, split_dir)
    if split_dir is not None and ssv2.annotation_dir(root, split_dir):
        return ssv2.split_ssv2(root, split_dir)
    if split_dir is None:
        found = {f"{SPLIT_FOLDER}/ (UCF101)": os.path.isfile(os.path.join(root, SPLIT_FOLDER, "classInd.txt")),
                 f"{hmdb51.SPLIT_FOLDER}/ (HMDB51)": os.path.isdir(os.path.join(root, hmdb51.SPLIT_FOLDER)),
                 f"{kinetics.ANNOTATIONS}/train.csv (Kinetics)": kinetics.annotation_dir(root, None) is not None,
                 f"{ssv2.LABELS} (Something-Something V2)": ssv2.annotation_dir(root, None) is not None}
        kinds = [k for k, here in found.items() if here]
        if len(kinds) > 1:
            raise DatasetError(root, f"holds both {' and '.join(kinds)}: set data.split_dir to the one to use")
        if kinds and "HMDB51" in kinds[0]:
            return hmdb51.split_hmdb51(root, None, split)
        if kinds and "Kinetics" in kinds[0]:
            return kinetics.split_kinetics(root, None)
        if kinds and "Something" in kinds[0]:
            return ssv2.split_ssv2(root, None)
        if kinds:
            split_dir = os.path.join(root, SPLIT_FOLDER)
    if split_dir is not None:
        return split_official(root, split_dir, split)
    return split_folders(root, split)
