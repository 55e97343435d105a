"""Decoders are frame-accurate: every backend against a full sequential decode, on a corpus of awkward formats."""

from __future__ import annotations

import logging
import random
import sys

import av
import numpy as np
import pytest
import torch
from videos import GOOD_VIDEOS, frame_number, write_good_corpus

from vidrcnn.errors import VideoDecodeError
from vidrcnn.io import VideoDecoder, backends, open_video
from vidrcnn.io.decord_backend import DecordDecoder
from vidrcnn.io.pyav import PyAVDecoder, keyframe_indices

# decord 0.6 returns wrong frames after seeks on these streams (all reorder frames: B-frames; the open-GOP ones
# 11-12 of 40 when first measured). Measured by test_every_backend_name_returns_the_right_frames below; this is why
# the decord backend hands every stream that reorders frames to PyAV, and open_video(backend="auto") never uses it.
DECORD_SEEK_BROKEN = {"hevc", "mpeg4_bframes_avi", "h264_opengop", "h264_opengop_mkv", "hevc_opengop"}


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, object]:
    return write_good_corpus(tmp_path_factory.mktemp("io_corpus"))


def sequential_decode(path, keep=None) -> dict[int, np.ndarray]:
    """The reference: plain PyAV decoding every frame from the start; frame i is the i-th frame out."""
    out = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if keep is None or i in keep:
                out[i] = frame.to_ndarray(format="rgb24")
    return out


def index_sets(n: int, seed: int) -> list[list[int]]:
    """Orders that stress seeking: middle clip, reversed, random with duplicates, strided, last, far jumps."""
    rng = random.Random(seed)
    mid = max(0, n // 2 - 4)
    sets = [
        list(range(mid, min(n, mid + 8))),
        list(reversed(range(n)))[: min(n, 10)],
        [rng.randrange(n) for _ in range(12)],
        list(range(0, n, 7)),
        [n - 1],
        [n - 1, 0, n // 3, n - 1],
        [0],
    ]
    return sets + [sorted(rng.sample(range(n), min(n, 5))) for _ in range(3)]


@pytest.mark.parametrize("name", sorted(GOOD_VIDEOS))
def test_pyav_equals_sequential_decode(corpus, name):
    path = corpus[name]
    ref = sequential_decode(path)
    assert [frame_number(ref[i]) for i in range(len(ref))] == list(range(len(ref)))  # the reference is sane
    with open_video(path, "pyav") as video:
        assert isinstance(video, VideoDecoder)
        assert video.num_frames == len(ref) == GOOD_VIDEOS[name][1]
        assert (video.height, video.width) == GOOD_VIDEOS[name][2]
        assert video.fps == pytest.approx(25.0)
        assert video.duration == pytest.approx(video.num_frames / 25.0)
        for indices in index_sets(video.num_frames, seed=len(name)):  # one decoder: every call follows other seeks
            got = video.get_frames(indices)
            assert got.dtype == torch.uint8 and got.shape == (len(indices), *GOOD_VIDEOS[name][2], 3)
            for j, i in enumerate(indices):
                assert np.array_equal(got[j].numpy(), ref[i]), f"{name}: asked frame {i}, got another"
        streamed = torch.cat(list(video.iter_frames(chunk_size=7)))
    assert np.array_equal(streamed.numpy(), np.stack([ref[i] for i in range(len(ref))]))


@pytest.mark.parametrize("name", ["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"])
def test_auto_equals_sequential_decode_on_real_videos(sample_videos, name):
    path = sample_videos[name]
    with open_video(path) as video:  # auto
        n = video.num_frames
        rng = random.Random(0)
        sets = [list(range(n // 2, n // 2 + 16)), [n - 1, 3, n - 2, rng.randrange(n)], sorted(rng.sample(range(n), 6))]
        ref = sequential_decode(path, keep={i for s in sets for i in s})
        assert len(ref) == len({i for s in sets for i in s})
        for indices in sets:
            got = video.get_frames(indices).numpy()
            assert all(np.array_equal(got[j], ref[i]) for j, i in enumerate(indices)), f"{name} {indices}"


def test_auto_is_right_on_every_corpus_file(corpus):
    for name, path in corpus.items():
        ref = sequential_decode(path)
        with open_video(path, "auto") as video:
            indices = [i for s in index_sets(video.num_frames, seed=1) for i in s]
            got = video.get_frames(indices).numpy()
        assert all(np.array_equal(got[j], ref[i]) for j, i in enumerate(indices)), name


def test_streaming_and_random_access_do_not_disturb_each_other(corpus):
    path = corpus["vp9"]
    with open_video(path) as video:
        chunks = video.iter_frames(chunk_size=8)
        first = next(chunks)
        assert frame_number(video.get_frames([50])[0].numpy()) == 50  # a seek while streaming
        rest = torch.cat(list(chunks))
    assert [frame_number(f) for f in torch.cat([first, rest]).numpy()] == list(range(60))


def test_clip_from_the_middle_decodes_from_the_nearest_keyframe(corpus):
    with PyAVDecoder(corpus["h264_longgop"]) as video:  # 90 frames, keyframes at 0 and 60 only
        assert keyframe_indices(video) == [0, 60]
        video.get_frames(range(64, 72))
        assert video.frames_decoded <= 72 - 60 + 4  # from keyframe 60 to frame 71, plus the decoder's B-frame delay
        before = video.frames_decoded
        video.get_frames([2, 3, 70])  # far apart: two short runs, not 0..70
        assert video.frames_decoded - before <= 4 + 11 + 8


@pytest.mark.parametrize("name", ["h264_opengop", "hevc_opengop"])
def test_open_gop_clips_at_and_just_before_each_keyframe(corpus, name):
    """Open GOP: the frames just before a keyframe in display order are decoded after it and reference the previous
    GOP, so a decoder that seeks to that keyframe gets them wrong or not at all. Ask for exactly those frames."""
    ref = sequential_decode(corpus[name])
    with PyAVDecoder(corpus[name]) as video:
        keys = [k for k in keyframe_indices(video) if k > 0]
    assert len(keys) >= 3, f"{name}: expected a keyframe every 12 frames, got {keys}"
    if name == "hevc_opengop":  # the stream really has leading pictures: a packet decoded after a later keyframe
        with av.open(str(corpus[name])) as container:  # that is shown before it
            packets = [(p.pts, p.is_keyframe) for p in container.demux(video=0) if p.size]
        assert any(key and pts > 0 and packets[i + 1][0] < pts for i, (pts, key) in enumerate(packets[:-1]))
    for k in keys:
        for indices in ([k - 1], [k - 2, k - 1], [k - 1, k, k + 1], [k, k + 1], [k + 1, k - 1]):
            with PyAVDecoder(corpus[name]) as video:  # a fresh decoder, so the first seek is the one tested
                got = video.get_frames(indices).numpy()
            for j, i in enumerate(indices):
                assert np.array_equal(got[j], ref[i]), f"{name}: asked frame {i} (keyframe {k}), got another"


def test_middle_clip_of_a_real_video_does_not_decode_it_all(sample_videos):
    with PyAVDecoder(sample_videos["bikes.mp4"]) as video:
        keys = keyframe_indices(video)
        start = video.num_frames // 2
        video.get_frames(range(start, start + 16))
        key = max(k for k in keys if k <= start)
        assert video.frames_decoded <= start + 16 - key + 8
        assert video.frames_decoded < video.num_frames // 2


def test_counting_fallback_is_frame_accurate(corpus):
    # Streams whose packets carry no pts are numbered by decoder output order; force that path on a B-frame file.
    path = corpus["h264_bframes"]
    ref = sequential_decode(path)
    with PyAVDecoder(path) as video:
        video._index.pts = None
        for indices in ([40, 41, 5], [59], [3, 3, 2]):
            got = video.get_frames(indices).numpy()
            assert all(np.array_equal(got[j], ref[i]) for j, i in enumerate(indices))
        assert np.array_equal(torch.cat(list(video.iter_frames(16))).numpy(), np.stack(list(ref.values())))


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_resize_and_argument_errors(corpus, backend):
    path = corpus["mpeg4_avi"]
    with open_video(path, backend) as video:
        small = video.get_frames([0, 5, 9], size=(24, 32))
        assert small.shape == (3, 24, 32, 3) and small.dtype == torch.uint8
        assert [frame_number(f) for f in small.numpy()] == [0, 5, 9]
        chunks = list(video.iter_frames(chunk_size=25, size=(12, 16)))
        assert [c.shape[0] for c in chunks] == [25, 25, 10] and chunks[0].shape[1:] == (12, 16, 3)
        assert video.get_frames([]).shape == (0, 48, 64, 3)
        for bad in ([60], [-1], [0, 1000]):
            with pytest.raises(VideoDecodeError, match="out of range") as info:
                video.get_frames(bad)
            assert str(path) in str(info.value)
        with pytest.raises(TypeError):
            video.get_frames([1.5])
    with pytest.raises(VideoDecodeError, match="closed"):
        video.get_frames([0])
    video.close()  # closing twice is harmless


def test_unknown_backend_is_a_value_error(corpus):
    with pytest.raises(ValueError, match="unknown video backend"):
        open_video(corpus["mjpeg"], "opencv")


def _decord_right(got: np.ndarray, ref: np.ndarray) -> bool:
    # decord converts YUV to RGB with its own swscale settings: allow rounding, not another frame.
    return float(np.abs(got.astype(np.int16) - ref.astype(np.int16)).mean()) < 3.0


def test_decord_sequential_read_matches(corpus):
    for name, path in corpus.items():
        ref = sequential_decode(path)
        with open_video(path, "decord") as video:
            assert video.num_frames == len(ref), name
            got = torch.cat(list(video.iter_frames(chunk_size=16))).numpy()
        assert all(_decord_right(got[i], ref[i]) for i in range(len(ref))), name


def _random_access_errors(open_reader, path, ref) -> tuple[int, int]:
    rng = random.Random(0)
    wrong = total = 0
    for _ in range(10):
        reader = open_reader(path)  # a fresh reader per clip, as a dataset does
        n = reader.num_frames if hasattr(reader, "num_frames") else len(reader)
        indices = sorted(rng.sample(range(n), min(n, 4)))
        got = reader.get_frames(indices).numpy() if hasattr(reader, "get_frames") else reader.get_batch(indices).asnumpy()
        wrong += sum(not _decord_right(got[j], ref[i]) for j, i in enumerate(indices))
        total += len(indices)
        if hasattr(reader, "close"):
            reader.close()
    return wrong, total


@pytest.mark.parametrize("name", sorted(GOOD_VIDEOS))
def test_every_backend_name_returns_the_right_frames(corpus, name):
    """Zero wrong frames for every backend name; decord itself is measured too, to show why it is bypassed."""
    import decord

    from vidrcnn.io.av_container import decord_hazard

    ref = sequential_decode(corpus[name])
    for backend in ("auto", "pyav", "decord"):
        wrong, total = _random_access_errors(lambda p, b=backend: open_video(p, b), corpus[name], ref)
        assert wrong == 0, f"backend {backend!r} returned {wrong}/{total} wrong frames on {name}"
    reorders = decord_hazard(corpus[name]) is not None
    with open_video(corpus[name], "decord") as video:
        assert video.backend == ("pyav" if reorders else "decord")
    assert reorders or name not in DECORD_SEEK_BROKEN  # every stream decord gets wrong is one it is not given
    if name in DECORD_SEEK_BROKEN:  # decord's own reader, asked directly: still wrong (decord 0.6)
        wrong, _ = _random_access_errors(lambda p: decord.VideoReader(str(p), ctx=decord.cpu(0)), corpus[name], ref)
        assert wrong > 0, f"decord now decodes {name} right: reconsider letting it take streams with B-frames"
        with pytest.raises(VideoDecodeError, match="reorders frames"):
            DecordDecoder(corpus[name])


def test_decord_missing_falls_back_to_pyav_with_a_clear_message(corpus, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "decord", None)  # what `import decord` sees where no wheel exists
    monkeypatch.setattr(backends, "_warned_no_decord", False)
    with pytest.raises(VideoDecodeError, match="decord.*not available") as info:  # asked for by class: an error
        DecordDecoder(corpus["mpeg4_avi"])
    assert str(corpus["mpeg4_avi"]) in str(info.value)
    for backend in ("decord", "decord", "auto"):
        with caplog.at_level(logging.WARNING, logger="vidrcnn.io.backends"), open_video(corpus["mpeg4_avi"], backend) as video:
            assert video.backend == "pyav"
            assert frame_number(video.get_frames([33])[0].numpy()) == 33
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "decord is not installed" in warnings[0] and "PyAV" in warnings[0]  # said once


@pytest.mark.parametrize("misbehaviour", ["lands_late", "lands_mid_gop"])
def test_a_seek_that_lands_wrong_is_caught(corpus, misbehaviour):
    # Demuxers seek differently (by dts, to the nearest index entry, ...): whatever lands past the keyframe aimed
    # at, or off a keyframe, must still give the right frames (by seeking again, or decoding from the start).
    path = corpus["h264_longgop"]  # keyframes at 0 and 60
    ref = sequential_decode(path)
    with PyAVDecoder(path) as video:
        def bad_seek(pts):
            if misbehaviour == "lands_late":  # forward to the next keyframe, or to the end of the file
                try:
                    video._live().seek(pts + 1, stream=video._stream, backward=False)
                except av.FFmpegError:
                    video._live().seek(10**9, stream=video._stream)
            else:  # to any frame a little before the keyframe: the first packets are not keyframes
                video._live().seek(max(pts - 3 * 512, 0), stream=video._stream, any_frame=True)

        video._seek_to = bad_seek
        for indices in ([62, 61], [5, 6, 70], [89], [0]):
            got = video.get_frames(indices).numpy()
            assert all(np.array_equal(got[j], ref[i]) for j, i in enumerate(indices)), indices
