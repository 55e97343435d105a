"""Container metadata is checked, not trusted: absurd frame rates are replaced or marked unknown, and flagged."""

from __future__ import annotations

import logging

import pytest
import torch
from videos import frame_number, write_absurd_fps

from vidrcnn.io import open_video, probe_video
from vidrcnn.io.base import checked_fps


@pytest.fixture(scope="module")
def absurd(tmp_path_factory):
    return write_absurd_fps(tmp_path_factory.mktemp("absurd_fps"))


def test_checked_fps_believes_only_a_plausible_rate():
    assert checked_fps("a", 25.0, 25.1) == (25.0, ())
    fps, notes = checked_fps("b", 1e8, 29.97)  # the header is absurd, the timestamps are not: theirs
    assert fps == pytest.approx(29.97) and "using 29.97 fps from the timestamps" in notes[0]
    fps, notes = checked_fps("c", 30000.0, 29000.0)  # nothing plausible: unknown
    assert fps == 0.0 and "treated as unknown" in notes[0]
    fps, notes = checked_fps("d", 25.0, 100.0)  # both plausible, 4x apart: the header, with a note
    assert fps == 25.0 and "the timestamps say 100 fps" in notes[0]
    assert checked_fps("e", 0.0, None)[0] == 0.0


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_an_absurd_frame_rate_is_unknown_and_the_frames_are_still_right(absurd, backend, caplog):
    for path in absurd.values():
        with caplog.at_level(logging.WARNING), open_video(path, backend) as video:
            assert video.fps == 0.0 and video.duration == 0.0 and video.num_frames == 30
            assert "treated as unknown" in video.notes[0]
            for indices in ([0, 17, 29], [29, 3, 16], [28], [12, 13, 2]):  # decord was wrong at random on the mkv
                assert [frame_number(f.numpy()) for f in video.get_frames(indices)] == indices
        assert "treated as unknown" in probe_video(path).notes[0]  # what the scanner and the dataset see


@pytest.mark.parametrize("degrees", [90, 180, 270])
@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_the_display_matrix_is_applied_unless_raw_is_asked_for(tmp_path, backend, degrees):
    import numpy as np
    from videos import write_rotated

    path = tmp_path / f"phone_{degrees}.mp4"
    coded = write_rotated(path, degrees)
    shown = np.rot90(coded, degrees // 90, axes=(1, 2))  # counter-clockwise, as the matrix says
    for orientation, want in (("display", shown), ("raw", coded)):
        with open_video(path, backend, orientation=orientation) as video:
            assert (video.height, video.width) == want.shape[1:3]
            got = video.get_frames([4, 0]).numpy()
            streamed = torch.cat(list(video.iter_frames(chunk_size=4))).numpy()
        for frames, indices in ((got, [4, 0]), (streamed, range(6))):
            err = np.abs(frames.astype(int) - want[list(indices)].astype(int)).mean()
            assert err < 3, (orientation, err)  # the same picture, up to YUV rounding
    with pytest.raises(ValueError, match="orientation must be one of"):
        open_video(path, backend, orientation="sideways")


def test_a_display_matrix_between_quarter_turns_is_noted():
    from vidrcnn.io.av_container import quarter_turns, rotation_note

    assert [quarter_turns(r) for r in (None, 0, 90, -180, 180, -90, 44, 46)] == [0, 0, 1, 2, 2, 3, 0, 1]
    assert rotation_note(90) is None and rotation_note(-180) is None and rotation_note(None) is None
    assert "rotates by 30 degrees, not a multiple of 90; frames are turned by 0 degrees" in rotation_note(30)


def test_the_decord_backend_hands_collapsed_timestamps_to_pyav(absurd):
    from vidrcnn.io.av_container import decord_hazard

    assert decord_hazard(absurd["mkv"]) == "repeated timestamps"
    with open_video(absurd["mkv"], "decord") as video:
        assert video.backend == "pyav"
