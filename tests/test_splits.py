"""build_split asks each dataset format in turn: every format is asked, and a folder two formats claim is refused."""

from __future__ import annotations

import pkgutil

import pytest

import vidrcnn.data.formats as formats_package
from vidrcnn.data.formats import hmdb51, ssv2
from vidrcnn.data.splits import FORMATS, build_split
from vidrcnn.errors import DatasetError


def test_every_format_module_is_asked():
    modules = {m.name for m in pkgutil.iter_modules(formats_package.__path__)} - {"common", "lists"}
    assert sorted(fmt.name for fmt in FORMATS) == sorted(modules)


def test_a_split_dir_holding_two_formats_is_refused_naming_both(tmp_path):
    (tmp_path / "root" / "walk").mkdir(parents=True)
    split_dir = tmp_path / "splits"
    split_dir.mkdir()
    (split_dir / "classInd.txt").write_text("1 walk\n")
    (split_dir / ssv2.LABELS).write_text('{"walk": "0"}')
    with pytest.raises(DatasetError, match=r"splits: holds both classInd.txt \(UCF101\) and "
                                           r"something-something-v2-labels.json \(Something-Something V2\)"):
        build_split(tmp_path / "root", split_dir=split_dir)


def test_hmdb51_split_files_of_another_split_report_the_missing_split(tmp_path):
    # HMDB51's files are there, only not those of the split asked for: HMDB51 says so (no UCF101 classInd.txt error)
    (tmp_path / "root" / "walk").mkdir(parents=True)
    hmdb51.write_split_files(tmp_path / "splits", {"walk": [[], [("a.avi", 1)]]})  # split 2 only
    (tmp_path / "splits" / "walk_test_split1.txt").unlink()
    with pytest.raises(DatasetError, match=r"no <class>_test_split1.txt files \(HMDB51 ships splits 1, 2 and 3\)"):
        build_split(tmp_path / "root", split_dir=tmp_path / "splits", split=1)
