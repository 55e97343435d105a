"""Clip samplers: pure functions from (number of frames, clip length, stride, rng) to frame indices.

Every sampler returns exactly ``clip_len`` indices in ``[0, num_frames)``, in temporal order. A video shorter than
the clip is **padded by repeating its last frame** (indices are clamped to ``num_frames - 1``), so the model always
sees ``clip_len`` frames and the clip still runs forward in time.

Randomness comes only from the ``rng`` argument (a :class:`random.Random`); ``rng=None`` gives the deterministic
test-time choice (centre clip, middle of each segment). The samplers keep no state (unlike pytorchvideo's clip
samplers), so the dataset stays map-style and DataLoader workers need no coordination.

Frame counts that containers report are often wrong. These functions trust the ``num_frames`` they are given; the
dataset passes the count of the *opened decoder* and, when the decoder cannot deliver a sampled index, counts the
frames it really has and samples again within that count (see :class:`vidrcnn.data.datasets.VideoClipDataset`).
"""

from __future__ import annotations

import itertools
import random


def _check(num_frames: int, clip_len: int, stride: int = 1) -> None:
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if clip_len < 1:
        raise ValueError(f"clip_len must be >= 1, got {clip_len}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")


def _clip_at(start: int, num_frames: int, clip_len: int, stride: int) -> list[int]:
    # Clamping to the last frame is the padding rule: a short video repeats its last frame.
    last = num_frames - 1
    return [min(start + i * stride, last) for i in range(clip_len)]


def clip_span(clip_len: int, stride: int) -> int:
    """Number of source frames a dense clip covers: ``(clip_len - 1) * stride + 1``."""
    return (clip_len - 1) * stride + 1


def dense_clip(num_frames: int, clip_len: int, stride: int = 1, rng: random.Random | None = None) -> list[int]:
    """``clip_len`` frames ``stride`` apart, starting at a random offset (``rng``) or centred (``rng=None``).

    Train with an rng (every start is equally likely), test with None. When the video is shorter than the clip's
    span ``(clip_len - 1) * stride + 1`` the clip starts at frame 0 and is padded by repeating the last frame.
    """
    _check(num_frames, clip_len, stride)
    room = num_frames - clip_span(clip_len, stride)
    if room <= 0:
        start = 0
    elif rng is None:
        start = room // 2
    else:
        start = rng.randint(0, room)
    return _clip_at(start, num_frames, clip_len, stride)


def _segment_bounds(num_frames: int, num_segments: int) -> list[tuple[int, int]]:
    # Integer boundaries so every frame belongs to exactly one segment and lengths differ by at most one.
    edges = [k * num_frames // num_segments for k in range(num_segments + 1)]
    return list(itertools.pairwise(edges))


def segment_clip(num_frames: int, clip_len: int, rng: random.Random | None = None) -> list[int]:
    """TSN sampling: split the whole video into ``clip_len`` equal segments and take one frame from each.

    With an rng the frame is drawn uniformly inside its segment (train); with None it is the segment's middle frame
    (test). The clip therefore always spans the whole video, whatever its length. A video with fewer frames than
    ``clip_len`` gives all its frames followed by copies of the last one.
    """
    _check(num_frames, clip_len)
    if num_frames < clip_len:
        return _clip_at(0, num_frames, clip_len, 1)
    out = []
    for lo, hi in _segment_bounds(num_frames, clip_len):
        out.append((lo + hi - 1) // 2 if rng is None else rng.randint(lo, hi - 1))
    return out


def segment_clips(num_frames: int, clip_len: int, num_clips: int) -> list[list[int]]:
    """``num_clips`` deterministic TSN clips for multi-clip testing: clip k takes, from every segment, the frame at
    relative position ``(k + 0.5) / num_clips`` inside it. ``num_clips=1`` equals ``segment_clip(..., rng=None)``
    up to rounding; short videos are padded as in :func:`segment_clip`.
    """
    _check(num_frames, clip_len)
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    if num_frames < clip_len:
        return [_clip_at(0, num_frames, clip_len, 1) for _ in range(num_clips)]
    bounds = _segment_bounds(num_frames, clip_len)
    return [[lo + int((k + 0.5) * (hi - lo) / num_clips) for lo, hi in bounds] for k in range(num_clips)]


def uniform_clips(num_frames: int, clip_len: int, stride: int, num_clips: int) -> list[list[int]]:
    """``num_clips`` dense clips with evenly spaced starts, the first at frame 0 and the last ending at the last
    frame (a single clip is centred), for multi-clip testing whose scores are averaged.

    Clips overlap when the video is short; a video shorter than one clip's span gives ``num_clips`` copies of the
    padded clip (see :func:`dense_clip`).
    """
    _check(num_frames, clip_len, stride)
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    room = num_frames - clip_span(clip_len, stride)
    if room <= 0:
        starts = [0] * num_clips
    elif num_clips == 1:
        starts = [room // 2]
    else:
        starts = [round(k * room / (num_clips - 1)) for k in range(num_clips)]
    return [_clip_at(s, num_frames, clip_len, stride) for s in starts]
