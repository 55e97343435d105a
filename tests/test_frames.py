"""Frame folders: open_video on a folder gives exactly the frames it was extracted from (PNG), errors name the
frame file, lists of 'folder num_frames label' train, and tools/extract_frames.py resumes."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from toolrun import load_tool, train_then_test
from videos import numbered_frames

from vidrcnn.cli import run_tool
from vidrcnn.data import build_split, make_synthetic, read_list_file
from vidrcnn.errors import DatasetError, VideoDecodeError
from vidrcnn.io import BACKENDS, open_video, probe_video, write_video
from vidrcnn.io.extract import extract_frames


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    video = d / "v_Biking_g01_c01.avi"
    write_video(video, numbered_frames(30, 48, 64), fps=25, codec="mpeg4")
    return video, {fmt: (d / fmt, extract_frames(video, d / fmt, fmt=fmt)) for fmt in ("png", "jpg")}


def test_a_png_frame_folder_is_exactly_the_video_it_came_from(extracted):
    video, folders = extracted
    folder, count = folders["png"]
    with open_video(video) as v, open_video(folder) as f:
        assert (f.backend, f.num_frames, f.fps, f.height, f.width) == ("frames", 30, v.fps, 48, 64) and count == 30
        idx = [29, 0, 7, 7, 15]  # any order, duplicates allowed
        assert torch.equal(f.get_frames(idx), v.get_frames(idx))
        assert torch.equal(torch.cat(list(f.iter_frames(8))), v.get_frames(range(30)))
        assert f.get_frames([3], size=(24, 32)).shape == (1, 24, 32, 3)
        with pytest.raises(VideoDecodeError, match="frame index 30 out of range"):
            f.get_frames([30])
    assert probe_video(folder).num_frames == 30


def test_every_backend_in_BACKENDS_is_accepted_and_frames_wants_a_folder(extracted):
    video, folders = extracted
    folder, _ = folders["png"]
    for backend in BACKENDS:  # a folder of frames is read as one, whatever the backend
        with open_video(folder, backend) as f:
            assert f.backend == "frames" and f.num_frames == 30
    with pytest.raises(VideoDecodeError, match=r"v_Biking_g01_c01.avi: no such frame folder"):
        open_video(video, "frames")
    with pytest.raises(ValueError, match="choose one of auto, pyav, decord, frames"):
        open_video(video, "ffmpeg")


def test_a_jpeg_folder_decodes_close_to_the_video(extracted):
    video, folders = extracted
    with open_video(video) as v, open_video(folders["jpg"][0]) as f:
        diff = (f.get_frames(range(30)).float() - v.get_frames(range(30)).float()).abs().mean()
    assert diff < 4  # lossy, but the same pictures


def test_missing_and_corrupt_frames_are_errors_naming_the_file(extracted, tmp_path):
    import shutil

    folder = tmp_path / "f"
    shutil.copytree(extracted[1]["jpg"][0], folder)
    (folder / "img_00003.jpg").unlink()
    with pytest.raises(VideoDecodeError, match=r"img_00003.jpg: frame 2 of 30 is missing"):
        open_video(folder)
    shutil.copy(folder / "img_00004.jpg", folder / "img_00003.jpg")
    (folder / "img_00030.jpg").unlink()  # the last one: only meta.json can tell
    with pytest.raises(VideoDecodeError, match=r"img_00030.jpg: frame 29 of 30 is missing"):
        open_video(folder)
    shutil.copy(folder / "img_00004.jpg", folder / "img_00030.jpg")
    (folder / "img_00010.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with open_video(folder) as f:
        assert torch.equal(f.get_frames([0]), open_video(extracted[1]["jpg"][0]).get_frames([0]))
        with pytest.raises(VideoDecodeError, match=r"img_00010.jpg: corrupt image"):
            f.get_frames([8, 9])


def test_a_list_of_frame_folders_with_counts(extracted, tmp_path):
    root = extracted[1]["png"][0].parent
    lst = tmp_path / "list.txt"
    lst.write_text("png 30 0\n")
    assert read_list_file(lst, root)[0].label == 0
    lst.write_text("png 31 0\n")
    with pytest.raises(DatasetError, match=r"list.txt: line 1: .*png holds 30 frames, the list says 31"):
        read_list_file(lst, root)


def test_extract_frames_resumes_and_its_list_trains_and_tests(tiny_synthetic, tmp_path, capsys):
    data = tiny_synthetic
    out = tmp_path / "frames"
    tool = load_tool("extract_frames")
    assert run_tool(tool.main, [str(data), str(out)]) == 0
    assert "88 videos in 11 classes" in capsys.readouterr().out
    lines = (out / "list.txt").read_text().splitlines()
    assert len(lines) == 88 and all(line.split()[1] == "16" for line in lines)
    (out / lines[0].split()[0] / "meta.json").unlink()  # as if stopped inside this video
    assert run_tool(tool.main, [str(data), str(out)]) == 0
    assert "(87 already done)" in capsys.readouterr().out
    split = build_split(out, list_file=out / "list.txt", classes_file=out / "classes.txt")
    assert len(split.test) == 77 and len(split.train) == 11  # UCF101 groups from the folder names: no leak
    result = train_then_test(out, tmp_path / "run", f"data.list_file={out / 'list.txt'}",
                             f"data.classes_file={out / 'classes.txt'}")
    assert result["num_videos"] == 77
    assert run_tool(tool.main, [str(data), str(data / "inside")]) == 2  # never into the videos' own folder


def test_png_folders_still_decode_once_decord_is_loaded(extracted):
    # decord ships its own zlib; torchvision's decode_png then failed on every file in that process
    from vidrcnn.io.decord_backend import decord_available

    decord_available()  # imports decord where it is installed (it is, on x86-64 Linux)
    video, folders = extracted
    with open_video(video) as v, open_video(folders["png"][0]) as f:
        assert torch.equal(f.get_frames([5, 6]), v.get_frames([5, 6]))


def test_make_synthetic_writes_frame_folders_with_their_list(tmp_path):
    root = make_synthetic(tmp_path / "f", num_groups=8, clips_per_group=1, num_frames=16, size=32, format="frames")
    assert not list(root.rglob("*.avi"))
    split = build_split(root, list_file=root / "list.txt", classes_file=root / "classes.txt")
    assert len(split.classes) == 11 and len(split.train) == 11 and len(split.test) == 77
    with open_video(split.test[0].path) as f:
        assert (f.backend, f.num_frames, f.fps) == ("frames", 16, 25.0)


def _videos(root, seed: int, frames: int = 12):
    """Two classes of one tiny video each, their pixels set by ``seed``."""
    for cls in ("Walk", "Run"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        video = numbered_frames(frames, 32, 32)
        write_video(root / cls / f"v_{cls}_g01_c01.avi", np.clip(video.astype(int) + 37 * seed, 0, 255).astype(np.uint8),
                    fps=25, codec="mpeg4")
    return root


def test_a_resumed_extraction_takes_only_its_own_frames(tmp_path, capsys):
    tool = load_tool("extract_frames")
    a, b, out = _videos(tmp_path / "A", 0), _videos(tmp_path / "B", 1, frames=8), tmp_path / "frames"
    assert run_tool(tool.main, [str(a), str(out)]) == 0
    capsys.readouterr()
    folder = out / "Run" / "v_Run_g01_c01"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for args, words in (([str(b), str(out)], "made from another video of that name"),  # another dataset, same OUT
                        ([str(a), str(out), "--format", "png"], "its frames are jpg"),
                        ([str(a), str(out), "--quality", "50"], "JPEG quality 90")):
        assert run_tool(tool.main, args) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {folder}: holds frames that do not match") and words in err, err
        assert "pass --overwrite to extract it again" in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing touched
    os.utime(a / "Run" / "v_Run_g01_c01.avi", ns=(1, 1))  # the source replaced under the same name
    assert run_tool(tool.main, [str(a), str(out)]) == 2 and "before this one changed" in capsys.readouterr().err
    assert run_tool(tool.main, [str(b), str(out), "--overwrite"]) == 0
    assert "(0 already done)" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == [*(f"img_{i:05d}.jpg" for i in range(1, 9)), "meta.json"]
    assert (out / "list.txt").read_text() == "Run/v_Run_g01_c01 8 0\nWalk/v_Walk_g01_c01 8 1\n"
    assert run_tool(tool.main, [str(b), str(out)]) == 0 and "(2 already done)" in capsys.readouterr().out


def test_an_unreadable_video_leaves_no_folder_behind(tmp_path, capsys):
    src = _videos(tmp_path / "A", 0)
    (src / "Walk" / "v_Walk_g02_c01.avi").write_bytes(b"not a video")
    out = tmp_path / "frames"
    assert run_tool(load_tool("extract_frames").main, [str(src), str(out)]) == 1
    assert "v_Walk_g02_c01.avi" in capsys.readouterr().err and not (out / "Walk" / "v_Walk_g02_c01").exists()
