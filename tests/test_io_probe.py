"""probe_video agrees with the decoders; ProbeCache probes each file once and notices changed files."""

from __future__ import annotations

import json
import logging
import os

import av
import pytest
from videos import noise_video, numbered_frames, write_bad_corpus

from vidrcnn.errors import OutputError, VideoDecodeError
from vidrcnn.io import ProbeCache, VideoInfo, open_video, probe_video, write_video
from vidrcnn.io import probe as probe_module


@pytest.fixture()
def video(tmp_path):
    return noise_video(tmp_path / "v.avi", num_frames=12)


def test_probe_matches_the_decoder(sample_videos):
    for path in sample_videos.values():
        info = probe_video(path)
        with open_video(path) as decoder:
            assert info == VideoInfo(decoder.num_frames, decoder.fps, decoder.width, decoder.height, decoder.duration)
    bikes = probe_video(sample_videos["bikes.mp4"])
    assert (bikes.num_frames, bikes.width, bikes.height) == (250, 640, 272)
    assert bikes.duration == pytest.approx(bikes.num_frames / bikes.fps)


def test_frame_count_comes_from_demuxing_not_the_header(tmp_path):
    path = tmp_path / "no_count.webm"
    write_video(path, numbered_frames(23, 16, 16), codec="libvpx-vp9", fps=10)
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # WebM states no frame count
    info = probe_video(path)
    assert (info.num_frames, info.fps, info.duration) == (23, 10.0, 2.3)


def test_cache_probes_each_file_once_and_persists(video, tmp_path, monkeypatch):
    cache_file = tmp_path / "cache" / "probe.json"
    with ProbeCache(cache_file) as cache:
        first = cache.get(video)
        assert cache.get(str(video)) == first and (cache.hits, cache.misses) == (1, 1)
    assert first.num_frames == 12 and json.loads(cache_file.read_text())["version"] == 3

    def no_probe(*args, **kwargs):
        raise AssertionError("probed again")

    monkeypatch.setattr(probe_module, "probe_video", no_probe)
    assert ProbeCache(cache_file).get(video) == first  # a new process reads the file, decodes nothing
    monkeypatch.undo()

    noise_video(video, num_frames=7, seed=3)  # same path, new content
    os.utime(video, ns=(0, 10**18))  # and a distinct mtime even on coarse-clock file systems
    assert ProbeCache(cache_file).get(video).num_frames == 7


def test_cache_remembers_failures_and_verification(tmp_path, sample_videos):
    bad = write_bad_corpus(tmp_path / "bad", sample_videos["carphone_pristine.mp4"])
    cache = ProbeCache(tmp_path / "probe.json", autosave=1)
    for kind in ("text", "corrupt_middle"):
        with pytest.raises(VideoDecodeError) as info:
            cache.get(bad[kind], verify=True)
        assert info.value.path == str(bad[kind])
    misses = cache.misses
    with pytest.raises(VideoDecodeError, match="not a readable video"):
        ProbeCache(tmp_path / "probe.json").get(bad["text"])  # from the saved cache (autosave=1)
    with pytest.raises(VideoDecodeError, match="corrupt"):
        cache.get(bad["corrupt_middle"])
    assert cache.misses == misses
    with pytest.raises(VideoDecodeError, match="no such file"):
        cache.get(bad["missing"])  # missing files are not cached: they may appear later


def test_verify_decodes_what_demuxing_cannot_see(tmp_path, sample_videos):
    bad = write_bad_corpus(tmp_path / "bad", sample_videos["carphone_pristine.mp4"])
    assert probe_video(bad["corrupt_middle"]).num_frames > 0  # demuxing alone finds nothing wrong
    with pytest.raises(VideoDecodeError, match="corrupt"):
        probe_video(bad["corrupt_middle"], verify=True)


def test_a_file_that_is_not_a_probe_cache_is_never_replaced(video, tmp_path, caplog):
    for content in ("{not json", '{"my": "settings"}', "\xff"):
        cache_file = tmp_path / "settings.json"
        cache_file.write_text(content)
        with pytest.raises(OutputError, match="is not a probe cache"):
            ProbeCache(cache_file)
        assert cache_file.read_text() == content
    # A cache of an older format is this class's own file: rebuilt, with a warning.
    cache_file = tmp_path / "probe.json"
    cache_file.write_text('{"version": 0, "entries": {"x": {}}}')
    with caplog.at_level(logging.WARNING):
        cache = ProbeCache(cache_file)
    assert "it will be rebuilt" in caplog.text and len(cache) == 0
    cache.get(video)
    cache.save()
    assert len(ProbeCache(cache_file)) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".probe-")]  # no temp file left behind