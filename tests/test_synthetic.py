"""The synthetic UCF101-format dataset: layout, split files, determinism, and that its classes mean what they say."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from toolrun import load_tool

from vidrcnn.cli import run_tool
from vidrcnn.data import synthetic, synthetic_classes
from vidrcnn.data.sampling import segment_clip
from vidrcnn.data.splits import build_split
from vidrcnn.errors import DatasetError, OutputError
from vidrcnn.io import open_video

TINY = {"num_groups": 8, "clips_per_group": 1, "num_frames": 16, "size": 32}
BY_NAME = {c.name: c for c in synthetic_classes.CLASSES}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return synthetic.make_synthetic(tmp_path_factory.mktemp("syn") / "data", seed=3, **TINY)


def decode(path: Path) -> np.ndarray:
    with open_video(path) as video:
        return video.get_frames(range(video.num_frames)).numpy()


def render(name: str, clip: int = 1, frames: int = 40, size: int = 64) -> np.ndarray:
    return synthetic_classes.render_clip(BY_NAME[name], seed=0, group=1, clip=clip, num_frames=frames, size=size).astype(float)


def changes(frames: np.ndarray) -> np.ndarray:
    """Per frame, how much differs from the clip's per-pixel median (the background, for anything moving)."""
    return np.abs(frames - np.median(frames, axis=0)).sum(axis=-1)  # (T, H, W)


def test_layout_and_split_files_are_ucf101s(tiny):
    names = sorted(c.name for c in synthetic_classes.CLASSES)
    assert sorted(p.name for p in tiny.iterdir() if p.is_dir() and p.name != "ucfTrainTestlist") == names
    assert len(names) == 11
    videos = sorted(tiny.glob("*/*.avi"))
    assert len(videos) == 11 * 8 and videos[0].name == "v_FlashBottomThenTop_g01_c01.avi"
    lists = tiny / "ucfTrainTestlist"
    class_ind = (lists / "classInd.txt").read_bytes()
    assert class_ind.startswith(b"1 FlashBottomThenTop\r\n2 FlashLeftThenRight\r\n") and class_ind.count(b"\r\n") == 11
    train = (lists / "trainlist01.txt").read_bytes().decode().split("\r\n")
    test = (lists / "testlist01.txt").read_bytes().decode().split("\r\n")
    assert train[0] == "FlashBottomThenTop/v_FlashBottomThenTop_g08_c01.avi 1" and train[-1] == ""
    assert test[0] == "FlashBottomThenTop/v_FlashBottomThenTop_g01_c01.avi" and len(test) == 11 * 7 + 1
    assert all(" " not in line for line in test)  # UCF101's test lists carry no labels
    official = build_split(tiny)
    assert official.classes == names and len(official.train) == 11 and len(official.test) == 77
    (lists).rename(tiny.parent / "lists-away")
    try:
        assert build_split(tiny) == official  # the folder-and-group rule gives the same split
    finally:
        (tiny.parent / "lists-away").rename(lists)


def test_a_split_without_test_groups_says_so_in_its_list_and_is_refused_with_the_reason(tiny):
    # 8 groups: split 3 tests on groups 15-21, which this dataset does not have
    text = (tiny / "ucfTrainTestlist" / "testlist03.txt").read_text()
    assert text.startswith("# split 3 tests on groups 15-21; this dataset has groups 1-8") and text.count("\n") == 1
    with pytest.raises(DatasetError, match=r"testlist03.txt: lists no video: split 3 \(test groups 15-21\) has no "
                                           r"test set here; choose another data.split"):
        build_split(tiny, split=3)
    assert len(build_split(tiny, split=2).test) == 11  # group 8 is split 2's


def test_videos_are_mpeg4_part2_with_the_requested_shape(tiny):
    import av

    path = tiny / "Still" / "v_Still_g01_c01.avi"
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    frames = decode(path)
    assert frames.shape == (16, 32, 32, 3)


def test_classes_json_describes_kinds_pairs_and_the_ceiling(tiny):
    meta = json.loads((tiny / "classes.json").read_text())
    kinds = {c["name"]: (c["kind"], c["pair"]) for c in meta["classes"]}
    assert [c["name"] for c in meta["classes"]] == build_split(tiny).classes
    assert kinds["MoveLeft"] == kinds["MoveRight"] == ("local", "Move")
    assert kinds["FlashLeftThenRight"] == kinds["FlashRightThenLeft"] == ("global", "FlashHorizontal")
    assert kinds["Still"] == ("static", None)
    assert sum(k == "local" for k, _ in kinds.values()) == 6 and sum(k == "global" for k, _ in kinds.values()) == 4
    assert meta["single_frame_ceiling"] == pytest.approx(6 / 11)
    assert meta["recommended"]["data.sampling"] == "segments" and meta["recommended"]["data.num_frames"] == 16


def test_single_frame_ceiling_from_definitions():
    pairs = [{"name": n, "pair": p} for n, p in [("a", "x"), ("b", "x"), ("c", "y"), ("d", "y"), ("s", None)]]
    assert synthetic_classes.single_frame_ceiling(pairs) == pytest.approx((0.5 * 4 + 1) / 5)
    assert synthetic_classes.single_frame_ceiling({"classes": pairs[:2]}) == pytest.approx(0.5)
    assert synthetic_classes.single_frame_ceiling() == pytest.approx(6 / 11)


def test_same_seed_same_frames_other_seed_other_frames(tiny, tmp_path):
    again = synthetic.make_synthetic(tmp_path / "again", seed=3, **TINY)
    other = synthetic.make_synthetic(tmp_path / "other", seed=4, **TINY)
    for rel in ("MoveLeft/v_MoveLeft_g02_c01.avi", "FlashTopThenBottom/v_FlashTopThenBottom_g08_c01.avi"):
        assert np.array_equal(decode(tiny / rel), decode(again / rel))
        assert not np.array_equal(decode(tiny / rel), decode(other / rel))


def test_moving_sprite_goes_the_way_its_class_says():
    for name, sign in (("MoveRight", 1), ("MoveLeft", -1)):
        for clip in (1, 2, 3):
            mass = changes(render(name, clip)).sum(axis=1)  # (T, W): where the sprite is, column-wise
            angle = np.angle(mass @ np.exp(2j * np.pi * (np.arange(64) + 0.5) / 64))  # circular: the scene wraps
            steps = np.angle(np.exp(1j * np.diff(angle)))
            assert (np.sign(steps) == sign).all(), (name, clip)


def test_local_motion_classes_move_in_every_frame_and_still_never_moves(tiny):
    for name in ("MoveRight", "ZoomIn", "ZoomOut", "RotateCW", "RotateCCW"):
        frames = render(name)
        assert (np.abs(np.diff(frames, axis=0)).max(axis=(1, 2, 3)) > 8).all(), name
    assert (np.diff(render("Still"), axis=0) == 0).all()
    decoded = decode(tiny / "Still" / "v_Still_g03_c01.avi").astype(int)
    assert np.abs(np.diff(decoded, axis=0)).max() <= 8  # only coding noise


@pytest.mark.parametrize(
    "name, axis, early_first",
    [("FlashLeftThenRight", 1, True), ("FlashRightThenLeft", 1, False), ("FlashTopThenBottom", 0, True),
     ("FlashBottomThenTop", 0, False)],
)
def test_global_classes_have_two_short_far_apart_events_and_nothing_between(name, axis, early_first):
    frames_n, d = 40, synthetic_classes.Scene(40, 64, 1.0).event_len()
    for clip in (1, 2, 3, 4):
        change = changes(render(name, clip, frames=frames_n))
        active = np.flatnonzero(change.reshape(frames_n, -1).max(axis=1) > 30)
        early, late = active[active < frames_n // 2], active[active >= frames_n // 2]
        assert len(early) == len(late) == d and np.ptp(early) == np.ptp(late) == d - 1  # one block each
        assert early[0] >= 0.1 * frames_n - 1 and early[-1] < frames_n / 3  # first third
        assert late[0] > 2 * frames_n / 3 - 1 and late[-1] <= 0.9 * frames_n  # last third
        where = [np.argwhere(change[block].max(axis=0) > 30)[:, axis].mean() for block in (early, late)]
        assert (where[0] < where[1]) == early_first  # left/top lamp first, or the other way round


@pytest.mark.parametrize("frames", [16, 40, 64])
def test_sixteen_segments_always_catch_a_global_event(frames):
    d = synthetic_classes.Scene(frames, 64, 1.0).event_len()
    for seed in range(100):
        sampled = set(segment_clip(frames, synthetic_classes.SEGMENTS, random.Random(seed)))
        assert all(sampled & set(range(s, s + d)) for s in range(frames - d + 1))


def test_bad_arguments_are_refused(tmp_path):
    for bad in ({"size": 33}, {"num_groups": 7}, {"num_frames": 8}):
        with pytest.raises(ValueError):
            synthetic.make_synthetic(tmp_path, **{**TINY, **bad})


def test_tool_writes_the_dataset(tmp_path, capsys):
    tool = load_tool("make_synthetic")
    out = tmp_path / "out"
    assert tool.main([str(out), "--groups", "8", "--clips-per-group", "1", "--frames", "16", "--size", "32",
                      "--seed", "1"]) == 0
    assert "wrote 88 videos in 11 classes" in capsys.readouterr().out
    assert json.loads((out / "classes.json").read_text())["generator"]["seed"] == 1
    with pytest.raises(SystemExit) as exit_:
        tool.main([str(tmp_path / "x"), "--size", "33"])
    assert exit_.value.code == 2 and "even" in capsys.readouterr().err


def test_a_folder_that_is_not_the_same_synthetic_dataset_is_never_written_into(tiny, tmp_path, capsys):
    real = tmp_path / "UCF101"
    (real / "ucfTrainTestlist").mkdir(parents=True)
    (real / "ucfTrainTestlist" / "classInd.txt").write_text("1 ApplyEyeMakeup\n")
    with pytest.raises(OutputError, match="is not empty and is not a synthetic dataset made with the same"):
        synthetic.make_synthetic(real, **TINY)
    assert [p.name for p in real.rglob("*")] == ["ucfTrainTestlist", "classInd.txt"]  # nothing written
    assert (real / "ucfTrainTestlist" / "classInd.txt").read_text() == "1 ApplyEyeMakeup\n"
    with pytest.raises(OutputError):  # another synthetic dataset (other seed) is not replaced either
        synthetic.make_synthetic(tiny, seed=4, **TINY)
    assert json.loads((tiny / "classes.json").read_text())["generator"]["seed"] == 3
    # The same arguments again: allowed (the same files, rewritten); --overwrite: the user asked.
    assert synthetic.make_synthetic(tiny, seed=3, **TINY) == tiny
    mixed = synthetic.make_synthetic(real, overwrite=True, **TINY)
    assert (mixed / "classes.json").is_file()
    tool = load_tool("make_synthetic")
    assert run_tool(tool.main, [str(tmp_path / "UCF101"), "--groups", "9"]) == 2  # as the command line: one line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {real}: is not empty"), err

