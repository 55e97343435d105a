"""``build_split``: the train/test samples and class names of a dataset folder, whatever its format.

Three ways to get a split, tried in this order:

1. ``list_file``: a plain annotation list (:mod:`.formats.lists`), named, never guessed.
2. A format's own split files, found by asking each format's ``detect`` in turn (:data:`FORMATS`): UCF101's lists,
   HMDB51's split files, Kinetics' CSVs, Something-Something V2's JSON. In ``split_dir`` when it is given, else in
   each format's own place under ``root``. A folder that two formats claim is refused, naming both.
3. The folders alone (:func:`.formats.ucf101.split_folders`): split by UCF101 group or stable hash.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from vidrcnn.data.formats import hmdb51, kinetics, ssv2, ucf101
from vidrcnn.data.formats.common import Format, Split
from vidrcnn.data.formats.lists import split_list
from vidrcnn.errors import DatasetError

FORMATS: tuple[Format, ...] = (ucf101.FORMAT, hmdb51.FORMAT, kinetics.FORMAT, ssv2.FORMAT)


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
    split_dir = None if split_dir is None else os.fspath(split_dir)
    found = [(fmt, mark) for fmt in FORMATS if (mark := fmt.detect(root, split_dir)) is not None]
    if len(found) > 1:
        marks = " and ".join(mark for _, mark in found)
        if split_dir is None:
            raise DatasetError(root, f"holds both {marks}: set data.split_dir to the one to use")
        raise DatasetError(split_dir, f"holds both {marks}: data.split_dir must hold the files of one format")
    if found:
        return found[0][0].split(root, split_dir, split)
    if split_dir is not None:  # no format's files: UCF101's lists are the ones meant most often; it says what is missing
        return ucf101.split_official(root, split_dir, split)
    return ucf101.split_folders(root, split)
