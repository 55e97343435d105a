"""The decoding benchmark's references load the same frames as the decoders, and its table has every row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from toolrun import load_tool

from vidrcnn.io import open_video
from vidrcnn.io.bench import clip_plan, floor_loader, make_ucf_like, markdown_table, naive_loader, run_benchmark

REPO = Path(__file__).resolve().parents[1]


def test_references_load_the_right_frames_and_the_table_is_complete(tmp_path):
    [path] = make_ucf_like(tmp_path, num_videos=1, seconds=1.2, size=(48, 64))
    with open_video(path) as video:
        assert (video.num_frames, video.width, video.height, video.fps) == (30, 64, 48, 25.0)
        for indices in clip_plan(30, 16, "middle", 1) + clip_plan(30, 16, "random", 2, seed=1):
            expected = video.get_frames(indices).numpy()
            assert np.array_equal(naive_loader(str(path), indices).numpy(), expected)
            assert np.array_equal(floor_loader(str(path), indices).numpy(), expected)
    rows = run_benchmark([path], ["pyav", "auto"], clip_len=8, clips=1, repeats=1)
    assert {(r["loader"], r["mode"]) for r in rows} == {
        (name, mode) for name in ("naive", "floor", "pyav", "auto") for mode in ("middle", "random")
    }
    assert all(r["clips_per_s"] > 0 for r in rows)
    table = markdown_table(rows)
    assert table.count("\n") == 1 + len(rows) and "| floor | middle |" in table


@pytest.mark.parametrize(("argv", "named"), [(["--num-videos", "0"], "--num-videos"),
                                             (["--clips", "0", "--repeats", "0"], "--clips, --repeats"),
                                             (["--seconds", "-1"], "--seconds")])
def test_tool_refuses_counts_below_one_without_a_traceback(argv, named, capsys):
    tool = load_tool("bench_decode")
    with pytest.raises(SystemExit) as info:
        tool.main(argv)
    assert info.value.code == 2
    assert f"error: {named} must be positive" in capsys.readouterr().err
