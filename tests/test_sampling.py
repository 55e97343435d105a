"""Clip samplers: pure index arithmetic, no decoder."""

from __future__ import annotations

import random

import pytest

from vidrcnn.data.sampling import clip_span, dense_clip, segment_clip, segment_clips, uniform_clips


def test_dense_clip_is_strided_and_centred_without_rng():
    assert dense_clip(100, 8, 2) == [42 + 2 * i for i in range(8)]  # span 15, room 85, centre start 42
    assert dense_clip(15, 8, 2) == list(range(0, 15, 2))  # exactly one clip fits


def test_dense_clip_random_start_covers_every_start_and_stays_in_range():
    starts = set()
    for seed in range(400):
        idx = dense_clip(30, 4, 3, random.Random(seed))
        assert len(idx) == 4 and idx == [idx[0] + 3 * i for i in range(4)]
        assert 0 <= idx[0] and idx[-1] <= 29
        starts.add(idx[0])
    assert starts == set(range(30 - clip_span(4, 3) + 1))


def test_short_video_is_padded_with_its_last_frame():
    assert dense_clip(5, 8, 1) == [0, 1, 2, 3, 4, 4, 4, 4]
    assert dense_clip(10, 4, 4) == [0, 4, 8, 9]  # span 13 > 10: start at 0, clamp the tail
    assert dense_clip(1, 3, 2, random.Random(0)) == [0, 0, 0]
    assert segment_clip(3, 6, random.Random(0)) == [0, 1, 2, 2, 2, 2]
    assert uniform_clips(4, 6, 1, 3) == [[0, 1, 2, 3, 3, 3]] * 3
    assert segment_clips(2, 4, 2) == [[0, 1, 1, 1]] * 2


def test_segment_clip_takes_one_frame_per_segment_over_the_whole_video():
    n, length = 50, 8
    bounds = [(k * n // length, (k + 1) * n // length) for k in range(length)]
    mids = segment_clip(n, length)
    assert mids == [(lo + hi - 1) // 2 for lo, hi in bounds]
    seen = [set() for _ in range(length)]
    for seed in range(300):
        idx = segment_clip(n, length, random.Random(seed))
        for k, (i, (lo, hi)) in enumerate(zip(idx, bounds)):
            assert lo <= i < hi
            seen[k].add(i)
    assert all(s == set(range(lo, hi)) for s, (lo, hi) in zip(seen, bounds))  # uniform within each segment


def test_segment_clips_spread_offsets_inside_segments():
    clips = segment_clips(40, 4, 5)  # segments of 10 frames, offsets 1, 3, 5, 7, 9
    assert clips == [[o + 10 * k for k in range(4)] for o in (1, 3, 5, 7, 9)]


def test_uniform_clips_span_the_video_evenly():
    clips = uniform_clips(100, 8, 2, 4)  # span 15, room 85
    assert [c[0] for c in clips] == [0, 28, 57, 85]
    assert clips[-1][-1] == 99
    assert all(c == [c[0] + 2 * i for i in range(8)] for c in clips)
    assert uniform_clips(100, 8, 2, 1) == [dense_clip(100, 8, 2)]


def test_same_rng_state_gives_the_same_clip():
    assert dense_clip(300, 16, 2, random.Random(7)) == dense_clip(300, 16, 2, random.Random(7))
    assert segment_clip(300, 16, random.Random(7)) == segment_clip(300, 16, random.Random(7))


@pytest.mark.parametrize(
    "call",
    [
        lambda: dense_clip(0, 4, 1),
        lambda: dense_clip(10, 0, 1),
        lambda: dense_clip(10, 4, 0),
        lambda: segment_clip(0, 4),
        lambda: uniform_clips(10, 4, 1, 0),
        lambda: segment_clips(10, 4, 0),
    ],
)
def test_invalid_arguments_raise(call):
    with pytest.raises(ValueError):
        call()
