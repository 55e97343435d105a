"""Kinetics from its CSV annotations: videos found where downloaders put them, missing ones counted and listed
(never a changed class list), malformed lines refused with file and line, and train/test on Kinetics' layout."""

from __future__ import annotations

import pytest
from toolrun import train_then_test

from vidrcnn.data import build_split, make_synthetic
from vidrcnn.data.formats.kinetics import split_kinetics, video_name, write_annotations
from vidrcnn.errors import DatasetError

TRAIN = [("abseiling", "0347ZoDXyP0", 14, 24), ("passing American football (in game)", "-0DL0_hdvSg", 5, 15),
         ("passing American football (in game)", "a_b-c_d_e_f", 0, 10), ("tying knot (not on a tie), x", "zzzzzzzzzzz", 3, 13)]
VAL = [("abseiling", "val00000001", 30, 40), ("tying knot (not on a tie), x", "val00000002", 1, 11)]


def _dataset(tmp_path, *, missing=("zzzzzzzzzzz",)):
    root = tmp_path / "k400"
    write_annotations(root / "annotations", {"train.csv": TRAIN, "validate.csv": VAL})
    for split, rows in (("train", TRAIN), ("val", VAL)):
        for i, (label, yid, start, end) in enumerate(rows):
            if yid in missing:
                continue
            # the crawler's <split>/<label>/ layout for some, flat for the others (as the CVDF archives are)
            folder = root / split / label if i % 2 == 0 else root / split
            folder.mkdir(parents=True, exist_ok=True)
            (folder / video_name(yid, start, end)).write_bytes(b"")
    return root


def test_annotations_give_the_classes_and_missing_videos_are_listed(tmp_path):
    root = _dataset(tmp_path)
    split = split_kinetics(root)
    assert split.classes == sorted({t[0] for t in TRAIN})  # a class whose train videos are all gone stays a class
    assert sorted(p.rpartition("/")[2] for p, _ in split.train) == sorted(
        video_name(y, s, e) for _, y, s, e in TRAIN if y != "zzzzzzzzzzz")
    assert [split.classes[label] for _, label in split.test] == [v[0] for v in VAL]
    assert list(split.missing) == ["train tying knot (not on a tie), x zzzzzzzzzzz_000003_000013"]
    assert build_split(root) == split  # detected from root/annotations/train.csv
    assert build_split(root, split_dir=root / "annotations") == split
    assert "annotations" not in {p.split("/")[-2] for p, _ in split.train}


@pytest.mark.parametrize("name,line,match", [
    ("train.csv", "abseiling,xyz,14", r"line 6: expected 5 or 6 fields"),
    ("train.csv", "abseiling,xyz,start,24,train,0", r"line 6: time_start and time_end must be seconds"),
    ("validate.csv", "unknown class,xyz,1,11,val,0", r"line 4: label 'unknown class' is not among the 3 classes"),
    ("validate.csv", "abseiling,0347ZoDXyP0,14,24,val,0",
     r"line 4: 0347ZoDXyP0_000014_000024 is annotated again \(first in train.csv, line 2\)"),
])
def test_malformed_lines_are_refused_with_the_file_and_the_line(tmp_path, name, line, match):
    root = _dataset(tmp_path)
    target = root / "annotations" / name
    target.write_text(target.read_text() + line + "\n")
    with pytest.raises(DatasetError, match=f"{name}: {match}"):
        split_kinetics(root)


def test_a_kinetics_csv_with_a_wrong_header_reports_its_header(tmp_path):
    # Kinetics' own file is present but broken: its problem is reported, never a fall-through to the class folders
    root = _dataset(tmp_path)
    (root / "annotations" / "train.csv").write_text("label,url\nabseiling,x\n")
    header = r"train.csv: line 1: expected the header label,youtube_id,time_start,time_end,split\[,is_cc\]"
    with pytest.raises(DatasetError, match=header):
        build_split(root)
    with pytest.raises(DatasetError, match=header):
        build_split(root, split_dir=root / "annotations")
    with pytest.raises(DatasetError, match=header):
        split_kinetics(root)
    with pytest.raises(DatasetError, match="no class folders with video files"):
        build_split(root / "annotations")  # the annotations folder is not a dataset root


def test_train_and_test_run_on_kinetics_layout_and_list_missing_videos(tmp_path):
    root = make_synthetic(tmp_path / "k", num_groups=8, clips_per_group=1, num_frames=16, size=32, format="kinetics")
    gone = next((root / "train").rglob("*.avi"))
    gone.unlink()  # gone from the web
    split = build_split(root)
    assert len(split.classes) == 11 and len(split.test) == 77 and len(split.train) == 10 and len(split.missing) == 1
    out = tmp_path / "run"
    assert train_then_test(root, out)["num_videos"] == 77
    listed = (out / "missing_videos.txt").read_text().splitlines()
    assert len(listed) == 1 and listed[0].startswith("train ") and listed[0].endswith(gone.stem)
