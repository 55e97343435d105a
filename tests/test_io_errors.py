"""Bad input raises VideoDecodeError naming the file, leaks no file descriptor, and scan_videos lists it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from toolrun import load_tool
from videos import noise_video, write_bad_corpus

from vidrcnn.errors import VideoDecodeError
from vidrcnn.io import open_video
from vidrcnn.io.decode_check import find_videos
from vidrcnn.io.writer import write_video

REPO = Path(__file__).resolve().parents[1]


scan_videos = load_tool("scan_videos")

# Not even a container: open_video itself must refuse these (with any backend).
UNOPENABLE = ("missing", "directory", "empty", "text", "random_bytes", "truncated_mp4", "audio_only")


@pytest.fixture(scope="module")
def bad(tmp_path_factory, sample_videos) -> dict[str, Path]:
    return write_bad_corpus(tmp_path_factory.mktemp("io_bad"), sample_videos["carphone_pristine.mp4"])


def open_and_decode_all(path: Path, backend: str) -> None:
    with open_video(path, backend) as video:
        video.get_frames(range(video.num_frames))


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "text", "random_bytes", "truncated_mp4",
                                  "truncated_avi", "audio_only", "corrupt_middle"])
def test_pyav_raises_video_decode_error_naming_the_file(bad, kind):
    with pytest.raises(VideoDecodeError) as info:
        open_and_decode_all(bad[kind], "pyav")
    assert type(info.value) is VideoDecodeError
    assert info.value.path == str(bad[kind]) and str(info.value).startswith(f"{bad[kind]}: ")
    assert info.value.cause and "\n" not in info.value.cause


def test_causes_say_what_is_wrong(bad):
    expected = {"missing": "no such file", "directory": "directory", "empty": "empty", "audio_only": "no video stream",
                "truncated_avi": "truncated", "corrupt_middle": "corrupt"}
    for kind, words in expected.items():
        with pytest.raises(VideoDecodeError, match=words):
            open_and_decode_all(bad[kind], "auto")


def test_corruption_in_the_middle_surfaces_where_it_is_decoded(bad):
    with open_video(bad["corrupt_middle"]) as video:
        assert video.get_frames([0, 1]).shape[0] == 2  # the intact start still decodes
        with pytest.raises(VideoDecodeError, match="frame .* corrupt"):
            video.get_frames(range(video.num_frames))


@pytest.mark.parametrize("kind", UNOPENABLE)
def test_decord_backend_raises_video_decode_error_too(bad, kind):
    with pytest.raises(VideoDecodeError) as info:
        open_and_decode_all(bad[kind], "decord")
    assert info.value.path == str(bad[kind])


def test_no_file_descriptor_is_left_open(bad, tmp_path):
    good = noise_video(tmp_path / "good.avi")
    open_and_decode_all(good, "pyav")  # first use loads codec libraries: not a leak
    before = open_fds()
    errors = []  # kept alive: their tracebacks reference every frame's locals, so only an explicit close() helps
    for _ in range(2):
        for path in [*bad.values(), good]:
            for backend in ("pyav", "decord"):
                try:
                    open_and_decode_all(path, backend)
                except VideoDecodeError as exc:
                    errors.append(exc)
        video = open_video(good)  # abandoned without close(): collected, not leaked
        video.get_frames([3])
        chunks = video.iter_frames(chunk_size=4)
        next(chunks)  # a stream left half read has a container of its own: dropped with it
        del video, chunks
    assert len(errors) == 2 * (2 * len(UNOPENABLE) + 2)  # truncated_avi and corrupt_middle: pyav only
    assert open_fds() == before


def test_scan_lists_each_bad_file_with_its_cause(bad, tmp_path, capsys):
    (tmp_path / "ok").mkdir()
    good = noise_video(tmp_path / "ok" / "good.avi")
    cache = tmp_path / "probe.json"
    roots = [str(bad["empty"].parent), str(good.parent)]
    assert scan_videos.main([*roots, "--cache", str(cache)]) == 1
    out, err = capsys.readouterr()
    files = [p for p in bad.values() if p.is_file()]
    assert len(files) == 7 and set(find_videos(bad["empty"].parent)) == set(files)
    lines = out.splitlines()
    assert sorted(line.split(": ")[0] for line in lines) == sorted(str(p) for p in files)
    assert all(len(line.split(": ", 1)[1]) > 5 for line in lines)  # a cause, not just a name
    assert "scanned 8 videos: 1 readable" in err and "7 unreadable" in err
    # second run: same verdicts, from the cache (the cache remembers failures too)
    assert scan_videos.main([*roots, "--cache", str(cache)]) == 1
    assert capsys.readouterr().out == out
    assert cache.stat().st_size > 0
    assert scan_videos.main([str(good.parent), "--quick"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "1 readable" in err


def test_scan_tool_reports_a_missing_folder_without_traceback(tmp_path):
    tool = [sys.executable, str(REPO / "tools" / "scan_videos.py")]
    missing = subprocess.run(
        [*tool, str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120, check=False
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr == f"error: {tmp_path / 'nowhere'}: no such file or directory\n"


def test_a_video_that_cannot_be_created_is_an_os_error_naming_it(tmp_path):
    # FFmpeg only notices when it writes the header, and its error carries no file name: the writer adds it.
    target = tmp_path / "no_such_folder" / "out.mp4"
    with pytest.raises(OSError) as info:
        write_video(target, np.zeros((2, 16, 16, 3), np.uint8))
    assert info.value.filename == str(target)


def test_scan_never_writes_its_cache_over_a_video_or_a_foreign_file(tmp_path, capsys):
    from vidrcnn.cli import run_tool

    good = noise_video(tmp_path / "good.avi")
    before = good.read_bytes()
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')
    for cache, cause in ((good, "is an input"), (notes, "is not a probe cache")):
        assert run_tool(scan_videos.main, [str(tmp_path), "--cache", str(cache)]) == 2
        assert cause in capsys.readouterr().err
    assert good.read_bytes() == before and notes.read_text() == '{"mine": 1}'


def test_scan_flags_readable_videos_with_an_absurd_frame_rate(tmp_path, capsys):
    from videos import write_absurd_fps

    files = write_absurd_fps(tmp_path)
    assert scan_videos.main([str(tmp_path)]) == 0  # readable: not errors, but listed
    out, err = capsys.readouterr()
    assert sorted(line.split(": warning: ")[0] for line in out.splitlines()) == sorted(map(str, files.values()))
    assert all("no plausible frame rate" in line for line in out.splitlines())
    assert "2 readable (60 frames, 2 with warnings)" in err


def test_scan_reports_a_file_that_decodes_only_in_part_as_damaged(tmp_path, capsys):
    full = tmp_path / "full.mkv"
    write_video(full, np.zeros((240, 32, 32, 3), np.uint8), fps=25)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert scan_videos.main([str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{cut}: damaged: the file may be truncated: it promises 9.60 s of video, "
                                + out.split("of video, ", 1)[1].splitlines()[0]]
    assert "scanned 2 videos: 1 readable" in err and "1 unreadable or damaged" in err
