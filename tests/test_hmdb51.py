"""HMDB51's official split files: parsed with the release's quirks, detected by build_split, refused with file and
line when malformed, and train/test run on a dataset in HMDB51's layout."""

from __future__ import annotations

import pytest
from toolrun import train_then_test

from vidrcnn.data import build_split, make_synthetic
from vidrcnn.data.formats.hmdb51 import SPLIT_FOLDER, split_hmdb51, write_split_files
from vidrcnn.errors import DatasetError

# Names as the release spells them: a leading '#', '&', '(', ')', '!' and ';'.
NAMES = {
    "pick": ["#122_Cleaning_Up_The_Beach_In_Chiba__Japan_pick_f_nm_np1_fr_bad_0.avi",
             "Pick_Up_Your_Trash!_pick_f_cm_np1_ba_med_1.avi"],
    "brush_hair": ["April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "Aussie_Brush_(Official)_brush_hair_u_cm_np1_fr_med_1.avi"],
    "cartwheel": ["Bodo_&_Tobi;_cartwheel_f_cm_np1_le_med_0.avi", "Cartwheel_Girl_cartwheel_f_cm_np1_ri_bad_2.avi"],
}


def _dataset(tmp_path, *, crlf: bool = True, missing_unused: bool = True):
    root = tmp_path / "hmdb51"
    for cls, names in NAMES.items():
        (root / cls).mkdir(parents=True)
        for name in names:
            (root / cls / name).write_bytes(b"")  # the split is read without decoding
    end = "\r\n" if crlf else "\n"
    splits = root / SPLIT_FOLDER
    splits.mkdir()
    for cls, names in NAMES.items():
        for k in (1, 2, 3):
            rows = [f"{names[0]} {1 if k != 2 else 2} ", f"{names[1]} {2 if k != 2 else 1} "]
            if missing_unused:
                rows.append(f"Not_On_Disk_{cls}_0.avi 0 ")  # marked 0: not used in this split, never looked for
            (splits / f"{cls}_test_split{k}.txt").write_bytes((end.join(rows) + end).encode())
    return root


@pytest.mark.parametrize("crlf", [True, False], ids=["crlf", "lf"])
def test_the_release_split_files_parse_with_their_quirks(tmp_path, crlf):
    root = _dataset(tmp_path, crlf=crlf)
    split = split_hmdb51(root, split=1)
    assert split.classes == ["brush_hair", "cartwheel", "pick"]  # from the split files' names, sorted
    by_name = {p.rpartition("/")[2]: (label, "train") for p, label in split.train}
    by_name.update({p.rpartition("/")[2]: (label, "test") for p, label in split.test})
    assert by_name == {NAMES[c][i]: (split.classes.index(c), "train" if i == 0 else "test") for c in NAMES
                       for i in (0, 1)}
    two = split_hmdb51(root, split=2)  # another split, other marks
    assert {p.rpartition("/")[2] for p, _ in two.test} == {names[0] for names in NAMES.values()}
    assert build_split(root, split=1) == split  # detected from the folder beside the classes
    assert build_split(root, split_dir=root / SPLIT_FOLDER, split=3) == split_hmdb51(root, split=3)


def test_malformed_and_missing_are_refused_with_the_file_and_the_line(tmp_path):
    root = _dataset(tmp_path)
    f = root / SPLIT_FOLDER / "cartwheel_test_split1.txt"
    lines = f.read_text().splitlines()
    f.write_text("\n".join([lines[0], "Cartwheel_Girl_cartwheel_f_cm_np1_ri_bad_2.avi 3", *lines[2:]]) + "\n")
    with pytest.raises(DatasetError, match=r"cartwheel_test_split1.txt: line 2: expected '<video> <0\|1\|2>'"):
        split_hmdb51(root, split=1)
    f.write_text("\n".join([lines[0], "Gone_cartwheel_0.avi 2"]) + "\n")
    with pytest.raises(DatasetError, match=r"cartwheel_test_split1.txt: line 2: cartwheel/Gone_cartwheel_0.avi is listed "
                                           r"but not found"):
        split_hmdb51(root, split=1)
    f.write_text("\n".join(lines) + "\n")
    pick = root / SPLIT_FOLDER / "pick_test_split1.txt"  # a video listed under two classes
    pick.write_text("\n".join([pick.read_text().splitlines()[0], f"{NAMES['cartwheel'][1]} 2"]) + "\n")
    with pytest.raises(DatasetError, match=r"pick_test_split1.txt: line 2: .*is listed again \(first in "
                                           r"cartwheel_test_split1.txt, line 2\)"):
        split_hmdb51(root, split=1)
    with pytest.raises(DatasetError, match=r"no <class>_test_split1.txt files"):
        split_hmdb51(root, split_dir=tmp_path, split=1)
    (root / "ucfTrainTestlist").mkdir()
    (root / "ucfTrainTestlist" / "classInd.txt").write_text("1 pick\n")
    with pytest.raises(DatasetError, match=r"holds both ucfTrainTestlist/ \(UCF101\) and testTrainMulti_7030_splits/"):
        build_split(root)


def test_the_writer_writes_lines_as_the_release_does(tmp_path):
    write_split_files(tmp_path / "again", {"pick": [[(NAMES["pick"][0], 2), (NAMES["pick"][1], 1)]]})
    text = (tmp_path / "again" / "pick_test_split1.txt").read_text()
    assert text == f"{NAMES['pick'][0]} 2 \n{NAMES['pick'][1]} 1 \n"  # the release's trailing space


def test_train_and_test_run_on_hmdb51_layout(tmp_path, capsys):
    root = make_synthetic(tmp_path / "hmdb", num_groups=8, clips_per_group=1, num_frames=16, size=32, format="hmdb51")
    assert (root / SPLIT_FOLDER).is_dir() and not (root / "ucfTrainTestlist").exists()
    split = build_split(root)
    assert len(split.classes) == 11 and len(split.test) == 7 * 11 and len(split.train) == 11
    result = train_then_test(root, tmp_path / "run")
    assert result["num_videos"] == 77 and result["classes"] == sorted(split.classes)
