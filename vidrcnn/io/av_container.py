"""What a video container declares, read with PyAV without decoding: its video stream, frame rate, duration and
rotation; the notes the decoders attach (a file that may be truncated, a rotation that was or was not applied); and
the hazard that makes decord unsafe on a file. :mod:`vidrcnn.io.pyav` decodes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import av

from vidrcnn.errors import VideoDecodeError
from vidrcnn.io.base import checked_fps

_ATTACHED_PIC = 0x400  # AV_DISPOSITION_ATTACHED_PIC

# Exceptions FFmpeg/PyAV raise on bad data; everything else is a bug and propagates.
AV_ERRORS = (av.FFmpegError, OSError, ValueError, UnicodeDecodeError, MemoryError)


def describe(exc: BaseException) -> str:
    """A short cause from a PyAV exception (its FFmpeg message without the repeated file name)."""
    if isinstance(exc, av.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    if isinstance(exc, OSError) and exc.strerror:
        return str(exc.strerror)
    return f"{type(exc).__name__}: {exc}"


def open_container(path: str) -> av.container.InputContainer:
    """``av.open`` for reading, with every failure turned into ``VideoDecodeError``."""
    try:
        return av.open(path, mode="r", metadata_errors="ignore")
    except AV_ERRORS as exc:
        raise VideoDecodeError(path, f"not a readable video ({describe(exc)})") from None


def video_stream(path: str, container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The first video stream, or ``VideoDecodeError`` (audio-only files, data files, images in odd containers)."""
    # Cover art (an audio file's attached picture) is a "video stream" of one image, not a video.
    streams = [s for s in container.streams.video if not int(s.disposition) & _ATTACHED_PIC]
    if not streams:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoDecodeError(path, f"no video stream (streams: {', '.join(kinds)})")
    stream = streams[0]
    if not stream.codec_context.width or not stream.codec_context.height:
        raise VideoDecodeError(path, "video stream has no frame size (unknown or unsupported codec)")
    return stream


def stream_fps(stream: av.video.stream.VideoStream, pts: Sequence[int] | None = None, *,
               path: str = "") -> tuple[float, tuple[str, ...]]:
    """Frame rate and notes (:func:`~vidrcnn.io.base.checked_fps`): the stream's stated rate, checked against the
    rate of the presentation timestamps ``pts`` (frames over their span); 0.0 when no plausible rate is known."""
    stated = next((float(r) for r in (stream.average_rate, stream.guessed_rate, stream.base_rate)
                   if r is not None and r > 0), 0.0)
    from_pts = None
    if pts is not None and len(pts) > 1 and stream.time_base:
        span = (max(pts) - min(pts)) * stream.time_base
        if span > 0:
            from_pts = float((len(pts) - 1) / span)
    return checked_fps(path, stated, from_pts)


# A stream this much shorter than its container says (seconds, or this share of the promise) is called truncated:
# a file cut short still demuxes, and its header still promises the whole length.
TRUNCATION_TOLERANCE = (0.5, 0.05)
TRUNCATED = "the file may be truncated"  # how the note starts (tools/scan_videos.py reports such files as damaged)


def declared_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """What the file says the video lasts: the stream's own duration, else the container's when no other stream
    could make it longer (an audio track may outlast the video); None when it says nothing."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and not container.streams.audio and len(container.streams.video) == 1:
        return container.duration / av.time_base
    return None


def truncation_note(declared: float | None, num_frames: int, fps: float, found: float | None = None) -> str | None:
    """A note when the frames found (lasting ``found`` seconds by their timestamps, else ``num_frames / fps``) fall
    short of the declared duration by more than :data:`TRUNCATION_TOLERANCE`."""
    if found is None:
        found = num_frames / fps if fps > 0 else None
    if not declared or not found:
        return None
    if declared - found <= max(TRUNCATION_TOLERANCE[0], TRUNCATION_TOLERANCE[1] * declared):
        return None
    return (f"{TRUNCATED}: it promises {declared:.2f} s of video, {found:.2f} s ({num_frames} frames) are there")


ORIENTATIONS = ("display", "raw")


def check_orientation(orientation: str) -> None:
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")


def quarter_turns(rotation: float | None) -> int:
    """A display matrix's counter-clockwise rotation in degrees (``VideoFrame.rotation``: 90, -180, -90...) as
    quarter turns 0..3, the ``k`` of ``np.rot90`` (an angle between two quarter turns goes to the nearest)."""
    return round((rotation or 0) / 90) % 4


def rotation_note(rotation: float | None) -> str | None:
    """A note for a display matrix that is not a whole number of quarter turns (frames cannot be turned exactly)."""
    if rotation and abs(rotation / 90 - round(rotation / 90)) > 1e-3:
        return (f"the display matrix rotates by {rotation:g} degrees, not a multiple of 90; frames are turned by "
                f"{90 * quarter_turns(rotation)} degrees")
    return None


def decord_hazard(path: str | os.PathLike, packets: int = 64) -> str | None:
    """Why decord would return wrong frames for ``path``, or None. decord 0.6 seeks by timestamp and returns wrong
    frames, silently, on streams that reorder frames (B-frames: the decoder says it may, ``has_b_frames``, or the
    presentation times of the first ``packets`` packets go back) and on streams whose timestamps do not increase
    (missing, or repeated, as when an absurd frame rate collapses them); tests/test_io_decoders.py and
    tests/test_io_metadata.py measure both."""
    path = os.fspath(path)
    with open_container(path) as container:
        stream = video_stream(path, container)
        if stream.codec_context.has_b_frames:
            return "the stream reorders frames (B-frames)"
        last = None
        try:
            for i, packet in enumerate(container.demux(stream)):
                if i >= packets:
                    break
                if not packet.size:
                    continue
                if packet.pts is None:
                    return "packets without timestamps"
                if last is not None and packet.pts <= last:
                    return ("the stream reorders frames (B-frames)" if packet.pts < last
                            else "repeated timestamps")
                last = packet.pts
        except AV_ERRORS as exc:
            raise VideoDecodeError(path, f"cannot read its packets ({describe(exc)})") from None
    return None


class NoTimestamps(Exception):
    """The decoder output a frame whose pts is missing or matches no packet, so frames cannot be matched."""


class PacketIndex:
    """Display-order pts of every frame and, per frame, the display index of the keyframe to start decoding at.

    ``pts`` is ``None`` in counting mode (packets without usable pts); ``count`` is then the packet count.
    """

    def __init__(self, path: str, container: av.container.InputContainer, stream: av.video.stream.VideoStream):
        pts_seen: list[int | None] = []
        dts_seen: list[int | None] = []
        keys: list[bool] = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the flush packet at the end, or an empty (dropped-frame) AVI chunk
                    continue
                if packet.is_corrupt:
                    raise VideoDecodeError(path, f"truncated or corrupt file (video packet {len(keys)} is incomplete)")
                pts_seen.append(packet.pts)
                dts_seen.append(packet.dts)
                keys.append(bool(packet.is_keyframe))
        except AV_ERRORS as exc:
            raise VideoDecodeError(path, f"demuxing failed after {len(keys)} packets ({describe(exc)})") from None
        if not keys:
            raise VideoDecodeError(path, "video stream has no frames")
        self.count = len(keys)
        self.pts: list[int] | None = None
        self.key_at: list[int] = []
        if any(p is None for p in pts_seen) or len(set(pts_seen)) != len(pts_seen):
            return  # counting mode
        order = sorted(range(self.count), key=lambda k: pts_seen[k])
        self.pts = [pts_seen[k] for k in order]
        # Seek targets per keyframe: its pts first, then its dts (demuxers such as mp4 seek by dts, which lies
        # before the pts when frames are reordered, so a pts target can land on the next keyframe).
        self.seek_targets: dict[int, list[int]] = {}
        last_key = -1  # -1: no keyframe at or before this frame, decode from the file's start
        for k in order:
            if keys[k]:
                last_key = len(self.key_at)
                dts = dts_seen[k]
                self.seek_targets[last_key] = [pts_seen[k]] + ([dts] if dts is not None and dts < pts_seen[k] else [])
            self.key_at.append(last_key)
        self.position = {p: i for i, p in enumerate(self.pts)}

    def runs(self, wanted: list[int]) -> list[list[int]]:
        """Split sorted unique display indices into runs that each need one seek."""
        runs: list[list[int]] = []
        for i in wanted:
            if runs and self.key_at[i] <= runs[-1][-1] + 1:
                runs[-1].append(i)  # its keyframe is at most the next frame: decoding on is no extra work
            else:
                runs.append([i])
        return runs
