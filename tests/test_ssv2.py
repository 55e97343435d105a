"""Something-Something V2 from its JSON annotations: the class is the template without brackets, looked up in the
labels file; malformed entries and missing videos are refused with the file and the entry; train/test on SSv2."""

from __future__ import annotations

import json

import pytest
from toolrun import train_then_test

from vidrcnn.data import build_split, make_synthetic
from vidrcnn.data.formats.ssv2 import LABELS, LISTS, class_of, split_ssv2
from vidrcnn.errors import DatasetError

LABEL_IDS = {"Pushing something from left to right": "1", "Pushing something from right to left": "0",
             "Putting something on a surface": "2"}
TRAIN = [{"id": "78687", "label": "pushing pen from left to right", "template": "Pushing [something] from left to right",
          "placeholders": ["pen"]},
         {"id": "42326", "label": "putting cup on a surface", "template": "Putting [something] on a surface",
          "placeholders": ["cup"]}]
VAL = [{"id": "74225", "label": "pushing box from right to left", "template": "Pushing [something] from right to left",
        "placeholders": ["box"]}]


def _dataset(tmp_path, train=TRAIN, val=VAL):
    root = tmp_path / "20bn-something-something-v2"
    (root / "labels").mkdir(parents=True)
    (root / "labels" / LABELS).write_text(json.dumps(LABEL_IDS))
    (root / "labels" / LISTS["train"]).write_text(json.dumps(train))
    (root / "labels" / LISTS["test"]).write_text(json.dumps(val))
    (root / "labels" / "something-something-v2-test.json").write_text(json.dumps([{"id": "1420"}]))  # no labels
    for e in [*TRAIN, *VAL]:
        (root / f"{e['id']}.webm").write_bytes(b"")
    return root


def test_the_class_is_the_template_without_brackets_ordered_by_id(tmp_path):
    root = _dataset(tmp_path)
    split = split_ssv2(root)
    assert class_of("Putting [something] on [something]") == "Putting something on something"
    assert split.classes == ["Pushing something from right to left", "Pushing something from left to right",
                             "Putting something on a surface"]
    assert [(p.rpartition("/")[2], label) for p, label in split.train] == [("78687.webm", 1), ("42326.webm", 2)]
    assert [(p.rpartition("/")[2], label) for p, label in split.test] == [("74225.webm", 0)]  # validation
    assert build_split(root) == split and build_split(root, split_dir=root / "labels") == split


@pytest.mark.parametrize("entry,match", [
    ({"id": "78687", "template": "Pushing [something] upwards"}, (r"entry 1 \(id 78687\): template 'Pushing \[something\] "
                                                                 r"upwards' \('Pushing something upwards'\) is not in")),
    ({"label": "no id", "template": "Putting [something] on a surface"}, r"entry 1: expected an object with an id"),
    ({"id": "99999", "template": "Putting [something] on a surface"}, r"entry 1 \(id 99999\): 99999.webm is not under"),
])
def test_bad_entries_are_refused_with_the_file_and_the_entry(tmp_path, entry, match):
    root = _dataset(tmp_path, train=[TRAIN[0], entry])
    with pytest.raises(DatasetError, match=f"{LISTS['train']}: {match}"):
        split_ssv2(root)


def test_a_labels_file_with_a_gap_in_its_ids_is_refused(tmp_path):
    root = _dataset(tmp_path)
    (root / "labels" / LABELS).write_text(json.dumps({**LABEL_IDS, "Putting something on a surface": "5"}))
    with pytest.raises(DatasetError, match=r"ids must run 0..2 without gaps"):
        split_ssv2(root)


def test_train_and_test_run_on_ssv2_layout_with_vp9_webm(tmp_path):
    root = make_synthetic(tmp_path / "ssv2", num_groups=8, clips_per_group=1, num_frames=16, size=32, format="ssv2")
    split = build_split(root)
    assert len(split.classes) == 11 and len(split.test) == 77 and all(p.endswith(".webm") for p, _ in split.train)
    assert train_then_test(root, tmp_path / "run")["num_videos"] == 77
