"""Splits (UCF101 lists, group splits, annotation lists) and the clip dataset on tiny real videos."""

from __future__ import annotations

import gc
import logging
import os
import pickle
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

import vidrcnn.data.datasets as datasets_module
from vidrcnn.data.datasets import VideoClipDataset, collate
from vidrcnn.data.formats import common
from vidrcnn.data.formats.common import Sample
from vidrcnn.data.splits import build_split
from vidrcnn.data.transforms import build_transform
from vidrcnn.errors import DatasetError, VideoDecodeError
from vidrcnn.io import open_video
from vidrcnn.io.writer import write_video

FRAMES = 12


# -- helpers ------------------------------------------------------------------------------------------------------------
def touch(root: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")


def ucf_tree(root: Path, classes=("Alpha", "Beta"), groups=range(1, 26), clips=(1,)) -> None:
    touch(root, *(f"{c}/v_{c}_g{g:02d}_c{k:02d}.avi" for c in classes for g in groups for k in clips))


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{line}\r\n" for line in lines).encode())  # CRLF, as UCF101 ships them
    return path


def raw(frames: torch.Tensor) -> torch.Tensor:
    """Identity-like transform (module level, so workers can pickle it): uint8 (T,H,W,3) -> float (C,T,H,W)."""
    return frames.permute(3, 0, 1, 2).float()


def frame_ids(video: torch.Tensor) -> list[int]:
    """Frame t of the test videos is grey level 16 + 16 t: read the indices back from a (C, T, H, W) clip."""
    return [round((video[:, t].mean().item() - 16) / 16) for t in range(video.shape[1])]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, str]:
    """Three readable 12-frame videos (two classes) and one corrupt file."""
    root = tmp_path_factory.mktemp("videos")
    ramp = torch.stack([torch.full((32, 32, 3), 16 + 16 * t, dtype=torch.uint8) for t in range(FRAMES)])
    paths = {}
    for name in ("a1", "a2", "b1"):
        path = root / name[0] / f"{name}.avi"
        path.parent.mkdir(exist_ok=True)
        write_video(path, ramp, fps=25, codec="mpeg4", bit_rate=1_000_000)
        paths[name] = str(path)
    bad = root / "b" / "broken.avi"
    bad.write_bytes(b"RIFF this is not a video at all" * 10)
    paths["bad"] = str(bad)
    return paths


# -- splits -------------------------------------------------------------------------------------------------------------
def test_folder_split_follows_ucf101_groups(tmp_path):
    ucf_tree(tmp_path, classes=("JumpRope", "JumpingJack", "Archery"), clips=(1, 2))
    for k in (1, 2, 3):
        split = build_split(tmp_path, split=k)
        assert split.classes == ["Archery", "JumpingJack", "JumpRope"]  # UCF101's case-insensitive order
        tested = set(range(7 * (k - 1) + 1, 7 * k + 1))
        assert {common.parse_ucf_name(s.path)[1] for s in split.test} == tested
        assert {common.parse_ucf_name(s.path)[1] for s in split.train} == set(range(1, 26)) - tested
        assert len(split.test) == 3 * 7 * 2 and len(split.train) == 3 * 18 * 2
        for s in split.train + split.test:
            assert Path(s.path).parent.name == split.classes[s.label]


def test_folder_split_of_other_names_is_by_a_stable_hash(tmp_path):
    touch(tmp_path, *(f"c{c}/clip {i}.mp4" for c in range(2) for i in range(100)), "c0/notes.txt", ".hidden/x.avi")
    split = build_split(tmp_path)
    again = build_split(tmp_path)
    assert split == again and split.classes == ["c0", "c1"]
    assert 0.15 < len(split.test) / 200 < 0.45  # about 7 groups of 25
    # MD5, not Python's salted hash(): the same value on every run and machine
    assert [common.stable_group(f"k/{i}") for i in range(5)] == [19, 21, 7, 11, 13]  # pinned: MD5-based
    assert common.stable_group("c0/clip 0.mp4") == common.stable_group("C0/CLIP 0.MP4")


def official_lists(root: Path, train: list[str], test: list[str], classes=("ApplyEyeMakeup", "HandstandPushups")):
    lists = root / "ucfTrainTestlist"
    write_lines(lists / "classInd.txt", [f"{i} {c}" for i, c in enumerate(classes, 1)])
    write_lines(lists / "trainlist01.txt", train)
    write_lines(lists / "testlist01.txt", test)
    return lists


def test_official_lists_crlf_one_based_and_case_insensitive(tmp_path):
    touch(tmp_path, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
          "HandstandPushups/v_HandstandPushups_g08_c01.avi", "HandstandPushups/v_HandstandPushups_g01_c01.avi")
    lists = official_lists(
        tmp_path,
        ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1", "HandstandPushups/v_HandStandPushups_g08_c01.avi 2"],
        ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "HandstandPushups/v_HandStandPushups_g01_c01.avi"],
    )
    for split in (build_split(tmp_path, split_dir=lists), build_split(tmp_path)):  # given, or found in root
        assert split.classes == ["ApplyEyeMakeup", "HandstandPushups"]
        assert [s.label for s in split.train] == [0, 1] and [s.label for s in split.test] == [0, 1]
        assert split.test[1].path == os.path.join(tmp_path, "HandstandPushups/v_HandstandPushups_g01_c01.avi")
        assert all(os.path.exists(s.path) for s in split.train + split.test)


def test_missing_listed_file_names_list_line_and_path(tmp_path):
    touch(tmp_path, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi")
    lists = official_lists(
        tmp_path,
        ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1", "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi 1"],
        ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"],
    )
    with pytest.raises(DatasetError) as err:
        build_split(tmp_path)
    assert err.value.path == str(lists / "trainlist01.txt")
    assert "line 2" in str(err.value) and "v_ApplyEyeMakeup_g09_c01.avi" in str(err.value)


def test_group_in_both_train_and_test_is_refused(tmp_path):
    touch(tmp_path, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi")
    official_lists(tmp_path, ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1"],
                   ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi"])
    with pytest.raises(DatasetError, match="g01.*both train and test"):
        build_split(tmp_path)


def test_train_label_must_agree_with_class_folder(tmp_path):
    touch(tmp_path, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi")
    official_lists(tmp_path, ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 2"],
                   ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"])
    with pytest.raises(DatasetError, match="line 1: label 2"):
        build_split(tmp_path)


def test_annotation_lists_single_and_pair(tmp_path):
    touch(tmp_path, *(f"videos/{c}/clip {i:03d}.mp4" for c in ("run", "walk") for i in range(40)))
    lines = [f"videos/{c}/clip {i:03d}.mp4 {label}" for label, c in enumerate(("run", "walk")) for i in range(40)]
    single = write_lines(tmp_path / "all.txt", ["# path label", *lines])
    split = build_split(tmp_path, list_file=single)
    assert len(split.train) + len(split.test) == 80 and split.test and split.train
    assert split.classes == ["run", "walk"]  # named after the folder holding each label's files
    pair = (write_lines(tmp_path / "train.txt", lines[::2]), write_lines(tmp_path / "test.txt", lines[1::2]))
    split = build_split(tmp_path, list_file=pair)
    assert [s.label for s in split.test] == [0] * 20 + [1] * 20
    assert split.test[0].path == os.path.join(tmp_path, "videos/run/clip 001.mp4")
    leaky = (pair[0], write_lines(tmp_path / "leak.txt", lines[:1]))
    with pytest.raises(DatasetError, match="both the train and the test"):
        build_split(tmp_path, list_file=leaky)
    with pytest.raises(DatasetError, match="line 1"):
        build_split(tmp_path, list_file=(pair[0], write_lines(tmp_path / "bad.txt", ["videos/run/nope.mp4 0"])))


def test_annotation_list_labels_and_duplicates_are_checked(tmp_path):
    touch(tmp_path, *(f"videos/{c}/clip {i:03d}.mp4" for c in ("run", "walk") for i in range(10)))
    lines = [f"videos/{c}/clip {i:03d}.mp4 {label}" for label, c in enumerate(("run", "walk")) for i in range(10)]
    cases = {
        "one_based": ([ln[:-1] + str(int(ln[-1]) + 1) for ln in lines], r"no video has label 0 \(is the list 1-based"),
        "stray": ([*lines[:-1], lines[-1][:-1] + "999"], r"no video has label 2, 3, 4, 5, 6, ... \(997 in all\)"),
        "two_labels": ([*lines, lines[0][:-1] + "1"], (r"line 21: videos/run/clip 000.mp4 is listed with label 1, "
                                                       r"and with label 0 on line 1")),
        "twice": ([*lines, lines[3]], r"line 21: videos/run/clip 003.mp4 is listed again on line 4"),
    }
    for name, (content, match) in cases.items():
        with pytest.raises(DatasetError, match=match) as info:
            build_split(tmp_path, list_file=write_lines(tmp_path / f"{name}.txt", content))
        assert info.value.path.endswith(f"{name}.txt")
    # A classes file names the labels and decides the range: a label past it is refused.
    classes = write_lines(tmp_path / "classes.txt", ["Running", "Walking", "Jumping"])
    split = build_split(tmp_path, list_file=write_lines(tmp_path / "ok.txt", lines), classes_file=classes)
    assert split.classes == ["Running", "Walking", "Jumping"]  # a class with no video is allowed when it is named
    with pytest.raises(DatasetError, match=r"label 3 \(e.g. .*clip 009.mp4\) is out of range: the classes file names 3"):
        build_split(tmp_path, list_file=write_lines(tmp_path / "big.txt", [*lines[:-1], lines[-1][:-1] + "3"]),
                    classes_file=classes)
    with pytest.raises(DatasetError, match="listed twice"):
        build_split(tmp_path, list_file=tmp_path / "ok.txt",
                    classes_file=write_lines(tmp_path / "dup.txt", ["Running", "Running"]))


def test_a_class_listed_twice_in_classind_says_so(tmp_path):
    touch(tmp_path, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi")
    official_lists(tmp_path, ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"],
                   ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"], classes=("ApplyEyeMakeup", "ApplyEyeMakeup"))
    with pytest.raises(DatasetError, match="line 2: class 'ApplyEyeMakeup' is listed twice \\(also on line 1\\)"):
        build_split(tmp_path)
    official_lists(tmp_path, ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"],
                   ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"], classes=("ApplyEyeMakeup", "applyeyemakeup"))
    with pytest.raises(DatasetError, match="differ only in case"):
        build_split(tmp_path)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"split": 4}, "split must be"), ({"split_dir": "x", "list_file": "y"}, "not both")],
)
def test_bad_arguments_are_dataset_errors(tmp_path, kwargs, match):
    ucf_tree(tmp_path)
    with pytest.raises(DatasetError, match=match):
        build_split(tmp_path, **kwargs)


def test_empty_test_set_is_refused(tmp_path):
    ucf_tree(tmp_path, groups=range(8, 26))
    with pytest.raises(DatasetError, match="test set is empty"):
        build_split(tmp_path, split=1)


def test_building_a_split_lists_each_folder_once_and_stats_no_file(tmp_path, monkeypatch):
    classes = [f"Class{i:02d}" for i in range(20)]
    ucf_tree(tmp_path, classes=classes, clips=(1, 2, 3))
    train = [f"{c}/v_{c}_g{g:02d}_c{k:02d}.avi {i + 1}" for i, c in enumerate(classes) for g in range(8, 26)
             for k in (1, 2, 3)]
    test = [f"{c.lower()}/V_{c.upper()}_g{g:02d}_c{k:02d}.avi" for c in classes for g in range(1, 8) for k in (1, 2, 3)]
    official_lists(tmp_path, train, test, classes=classes)
    calls = {"list": 0, "stat": 0}

    def counting(fn, key):
        def wrapper(*a, **kw):
            calls[key] += 1
            return fn(*a, **kw)
        return wrapper

    monkeypatch.setattr(os, "scandir", counting(os.scandir, "list"))
    monkeypatch.setattr(os, "listdir", counting(os.listdir, "list"))
    monkeypatch.setattr(os, "stat", counting(os.stat, "stat"))
    official = build_split(tmp_path)
    assert len(official.train) + len(official.test) == 20 * 25 * 3
    assert calls["list"] <= 1 + len(classes) and calls["stat"] < 20
    calls.update(list=0, stat=0)
    os.rename(tmp_path / "ucfTrainTestlist", tmp_path.parent / f"{tmp_path.name}-lists")
    folders = build_split(tmp_path)
    assert sorted(folders.train) == sorted(official.train) and sorted(folders.test) == sorted(official.test)
    assert calls["list"] <= 1 + len(classes) and calls["stat"] < 20


# -- the clip dataset -----------------------------------------------------------------------------------------------------
def test_eval_items_decode_the_sampled_frames(videos):
    ds = VideoClipDataset([(videos["a1"], 0), (videos["b1"], 1)], num_frames=4, stride=2, train=False, transform=raw)
    item = ds[1]
    assert item["video"].shape == (3, 4, 32, 32) and item["video"].dtype == torch.float32
    assert frame_ids(item["video"]) == [2, 4, 6, 8]  # centred dense clip: span 7 in 12 frames
    assert (item["label"], item["index"], item["path"], item["ok"], item["skipped"]) == (1, 1, videos["b1"], True, [])
    multi = VideoClipDataset([(videos["a1"], 0)], num_frames=3, sampling="segments", train=False, num_clips=2,
                             transform=raw)[0]["video"]
    assert multi.shape == (2, 3, 3, 32, 32)
    assert [frame_ids(c) for c in multi] == [[1, 5, 9], [3, 7, 11]]  # offsets 1/4 and 3/4 of each segment


def test_train_items_are_random_clips_inside_the_video(videos):
    torch.manual_seed(0)
    ds = VideoClipDataset([(videos["a1"], 0)], num_frames=4, stride=3, train=True,
                          transform=build_transform(train=True, size=16))
    starts = set()
    for _ in range(12):
        item = ds[0]
        assert item["video"].shape == (3, 4, 16, 16) and item["ok"]
    segs = VideoClipDataset([(videos["a1"], 0)], num_frames=12, sampling="segments", train=True, transform=raw)
    assert frame_ids(segs[0]["video"]) == list(range(12))  # 12 segments of one frame each
    dense = VideoClipDataset([(videos["a1"], 0)], num_frames=2, stride=5, train=True, transform=raw)
    for _ in range(25):
        ids = frame_ids(dense[0]["video"])
        assert ids[1] - ids[0] == 5
        starts.add(ids[0])
    assert starts == {0, 1, 2, 3, 4, 5, 6}


def test_short_video_is_padded_with_the_last_frame(videos):
    ds = VideoClipDataset([(videos["a1"], 0)], num_frames=8, stride=2, train=False, transform=raw)
    assert frame_ids(ds[0]["video"]) == [0, 2, 4, 6, 8, 10, 11, 11]


def test_unreadable_video_is_skipped_in_training_and_logged_once(videos, caplog):
    samples = [(videos["bad"], 1), (videos["a1"], 0), (videos["a2"], 0)]
    ds = VideoClipDataset(samples, num_frames=2, train=True, transform=raw)
    with caplog.at_level(logging.WARNING, logger="vidrcnn.data.datasets"):
        first, second = ds[0], ds[0]
    for item in (first, second):
        assert item["ok"] and item["index"] in (1, 2) and item["path"] != videos["bad"]
        assert item["skipped"] == [videos["bad"]]
    assert first["index"] == second["index"]  # the substitute is drawn deterministically from the index
    warnings = [r for r in caplog.records if videos["bad"] in r.getMessage()]
    assert len(warnings) == 1
    strict = VideoClipDataset(samples, num_frames=2, train=True, transform=raw, on_error="raise")
    with pytest.raises(VideoDecodeError) as err:
        strict[0]
    assert err.value.path == videos["bad"]


def test_substitutes_are_drawn_anew_each_epoch(videos):
    samples = [(videos["bad"], 1)] + [(videos[k], 0) for k in ("a1", "a2", "b1")] * 8
    ds = VideoClipDataset(samples, num_frames=2, train=True, transform=raw)
    chosen = {}
    for epoch in range(1, 7):
        ds.set_epoch(epoch)
        chosen[epoch] = ds[0]["index"]
        assert ds[0]["index"] == chosen[epoch]  # within an epoch: deterministic
    assert len(set(chosen.values())) > 1  # across epochs: not one fixed chain


def test_an_error_raised_in_a_dataloader_worker_comes_back_as_one_line(videos):
    from vidrcnn.cli import run_tool

    ds = VideoClipDataset([(videos["bad"], 0)] * 4, num_frames=2, train=True, transform=raw, max_retries=2)
    loader = DataLoader(ds, batch_size=2, num_workers=1, collate_fn=collate)
    batches = iter(loader)
    with pytest.raises(DatasetError) as info:
        next(batches)
    assert str(info.value).startswith(f"{videos['bad']}: 3 unreadable videos in a row") and "\n" not in str(info.value)
    error = info.value.with_traceback(None)
    del batches, info  # the iterator (held in a reference cycle by the traceback) and its worker end here, not
    gc.collect()  # at a later test's garbage collection, where joining the idle worker took 10 s

    def main(_argv):
        raise error

    assert run_tool(main, []) == 2  # a tool prints it as one error line, no traceback


def test_unreadable_video_counts_as_wrong_at_test_time(videos):
    transform = build_transform(train=False, size=16, three_crop=True)
    ds = VideoClipDataset([(videos["a1"], 0), (videos["bad"], 1)], num_frames=4, train=False, transform=transform,
                          num_clips=2)
    good, bad = ds[0], ds[1]
    assert bad["ok"] is False and bad["label"] == 1 and bad["index"] == 1
    assert bad["video"].shape == good["video"].shape == (6, 3, 4, 16, 16)
    assert not bad["video"].any()
    batch = collate([good, bad])
    assert batch["ok"].tolist() == [True, False] and batch["label"].dtype == torch.long
    assert batch["video"].shape == (2, 6, 3, 4, 16, 16)


def test_a_container_that_overstates_its_frame_count_is_clamped(videos, monkeypatch):
    class Overcounting:
        """A decoder whose container claims 20 more frames than it delivers (as broken AVI indexes do)."""

        scans = 0

        def __init__(self, path, backend="auto"):
            self._real = open_video(path, backend)
            self.path, self.num_frames = self._real.path, self._real.num_frames + 20

        def get_frames(self, indices, size=None):
            if max(indices) >= self._real.num_frames:
                raise VideoDecodeError(self.path, "end of stream before the requested frame")
            return self._real.get_frames(indices, size)

        def iter_frames(self, chunk_size=32, size=None):
            Overcounting.scans += 1
            return self._real.iter_frames(chunk_size, size)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._real.close()

    monkeypatch.setattr(datasets_module, "open_video", Overcounting)
    ds = VideoClipDataset([(videos["a1"], 0)], num_frames=4, train=False, transform=raw)
    assert frame_ids(ds[0]["video"]) == [4, 5, 6, 7]  # centred in the 12 real frames, not in the claimed 32
    assert frame_ids(ds[0]["video"]) == [4, 5, 6, 7]
    assert Overcounting.scans == 1  # the true count is remembered


def test_construction_opens_nothing_and_dataset_pickles(videos, monkeypatch):
    def forbidden(*a, **kw):
        raise AssertionError("no video may be opened or probed at construction")

    monkeypatch.setattr(datasets_module, "open_video", forbidden)
    monkeypatch.setattr(datasets_module, "probe_video", forbidden)
    ds = VideoClipDataset([Sample(f"/nowhere/{i}.avi", i % 3) for i in range(13000)], num_frames=16, train=True,
                          transform=raw)
    assert len(ds) == 13000 and len(pickle.loads(pickle.dumps(ds))) == 13000


def test_video_info_goes_through_the_probe_cache(videos):
    class Cache:
        def __init__(self):
            self.asked = []

        def get(self, path):
            self.asked.append(path)
            return "info"

    cache = Cache()
    ds = VideoClipDataset([(videos["a1"], 0)], num_frames=4, train=False, transform=raw, probe_cache=cache)
    assert ds.video_info(0) == "info" and cache.asked == [videos["a1"]]
    assert VideoClipDataset([(videos["a1"], 0)], num_frames=4, train=False, transform=raw).video_info(0).num_frames \
        == FRAMES


def test_dataloader_with_two_workers(videos):
    samples = [(videos["a1"], 0), (videos["a2"], 0), (videos["b1"], 1), (videos["bad"], 1)] * 2
    ds = VideoClipDataset(samples, num_frames=4, stride=2, train=True, transform=build_transform(train=True, size=24))
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert [b["video"].shape[0] for b in batches] == [3, 3, 2]
    assert all(b["video"].shape[1:] == (3, 4, 24, 24) for b in batches)
    skipped = [p for b in batches for p in b["skipped"]]
    assert set(skipped) == {videos["bad"]} and len(skipped) >= 2  # a substitute can be the other bad copy
    for b in batches:
        for path, label in zip(b["path"], b["label"].tolist()):
            assert path != videos["bad"] and label == (0 if "/a/" in path.replace(os.sep, "/") else 1)


def test_invalid_dataset_options_raise():
    with pytest.raises(ValueError, match="sampling"):
        VideoClipDataset([], num_frames=4, train=True, transform=raw, sampling="random")
    with pytest.raises(ValueError, match="on_error"):
        VideoClipDataset([], num_frames=4, train=True, transform=raw, on_error="ignore")
    with pytest.raises(ValueError, match="num_clips"):
        VideoClipDataset([], num_frames=4, train=True, transform=raw, num_clips=3)
