"""PyAV (FFmpeg) decoder: frame-accurate random access by a packet index built at open time.

How frames are numbered. At open, the video stream's packets are demuxed once (no decoding, ~5 us a packet) and
their timestamps and keyframe flags recorded. Frame ``i`` is the packet with the ``i``-th smallest pts, i.e. display
order; ``num_frames`` is the number of non-empty packets found. The count in the container header is never trusted
(it is missing in WebM, estimated in some muxers, stale in truncated files); the demuxed count is exact for the file
as it is on disk and equals what a full sequential decode yields.

How a clip is fetched. The wanted indices are sorted and grouped into runs; each run starts with one seek to the
keyframe at or before its first frame, then decodes forward only until its last frame is out. A new run (a new
seek) starts only when the next wanted frame lies beyond a keyframe that is past the frame just decoded, which is
never more work than decoding through. After a seek the first packet is checked: a non-keyframe is skipped, a
keyframe past the one aimed at (a demuxer that seeks by dts, say) makes the run start over from the file's start.

Streams whose packets carry no pts, or duplicate ones, fall back to counting: frames are numbered in the order the
decoder outputs them, decoding from the start of the file up to the last wanted frame.

Errors. Unreadable files, a stream without video, packets flagged corrupt (typically a truncated file), frames the
decoder marks corrupt and frames the decoder never outputs all raise ``VideoDecodeError`` naming the file. A frame
is only checked when it is decoded, so corruption in the middle of a file surfaces when a clip covers it (or when
the whole file is decoded, as ``tools/scan_videos.py`` does).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from vidrcnn.errors import VideoDecodeError
from vidrcnn.io.av_container import (
    AV_ERRORS,
    NoTimestamps,
    PacketIndex,
    check_orientation,
    declared_duration,
    describe,
    open_container,
    quarter_turns,
    rotation_note,
    stream_fps,
    truncation_note,
    video_stream,
)
from vidrcnn.io.base import DecoderBase, check_file, check_size, warn_once

try:  # PyAV >= 14; older versions demux the other streams too, which is only slower
    from av.stream import Discard

    _DISCARD_ALL = Discard.all
except ImportError:  # pragma: no cover
    _DISCARD_ALL = None

class PyAVDecoder(DecoderBase):
    """Decode with PyAV. ``num_threads`` > 1 turns on FFmpeg frame/slice threading (helps large frames only)."""

    backend = "pyav"

    def __init__(self, path: str | os.PathLike, *, num_threads: int = 1, orientation: str = "display"):
        self.path = check_file(path)
        check_orientation(orientation)
        self._num_threads = max(1, int(num_threads))
        self._container = None
        self.frames_decoded = 0  # frames the decoder has output so far: what random access costs
        # One reformatter per decoder keeps its swscale context: frame.to_ndarray() builds a new one per frame,
        # which costs more than decoding the frame (measured 0.8-1.4 ms vs 0.2 ms at 320x240).
        self._reformatter = VideoReformatter()
        self._open()
        try:
            stream = self._stream
            self._index = PacketIndex(self.path, self._container, stream)
            self.num_frames = self._index.count
            self.fps, self.notes = stream_fps(stream, self._index.pts, path=self.path)
            # The frames' own span (the last frame's time plus the interval before it): a variable frame rate is not
            # a shortfall. Two timestamps, not frame_times(): every dataset sample opens its video.
            pts = self._index.pts
            found = (float((2 * pts[-1] - pts[-2] - pts[0]) * stream.time_base)
                     if pts and len(pts) > 1 and stream.time_base else None)
            note = truncation_note(declared_duration(self._container, stream), self.num_frames, self.fps, found)
            self.notes = (*self.notes, note) if note else self.notes
            # The display matrix (phone videos): frames come out as they are meant to be seen, unless "raw". FFmpeg
            # attaches it to every decoded frame, so it is read from the first frame decoded anyway (None: not yet).
            self._turns: int | None = None if orientation == "display" else 0
            self._coded = (int(stream.codec_context.height), int(stream.codec_context.width))
        except BaseException:
            self.close()
            raise

    def frame_times(self) -> list[float] | None:
        """Each frame's time from its own timestamp (so a variable-frame-rate file keeps its timing)."""
        pts, base = self._index.pts, self._stream.time_base
        if not pts or not base:
            return None
        base = float(base)  # one conversion, not a Fraction product per frame
        return [(p - pts[0]) * base for p in pts]

    # -- container handling -------------------------------------------------------------------------------------
    def _open(self) -> None:
        self.close()
        self._container, self._stream = self._open_stream()

    def _open_stream(self):
        container = open_container(self.path)
        try:
            stream = video_stream(self.path, container)
            for other in container.streams:
                if other is not stream and _DISCARD_ALL is not None:
                    other.discard = _DISCARD_ALL  # the demuxer skips audio etc. instead of reading it for nothing
            if self._num_threads > 1:
                stream.thread_type = "AUTO"
                stream.thread_count = self._num_threads
        except BaseException:
            container.close()
            raise
        return container, stream

    def close(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.close()

    def __del__(self) -> None:
        # A caller that forgets close() must not leak a file descriptor per video; close() is idempotent.
        with contextlib.suppress(Exception):
            self.close()

    def _live(self):
        if self._container is None:
            raise VideoDecodeError(self.path, "decoder is closed")
        return self._container

    def _packets(self, container=None, stream=None):
        """Demux the video stream from the current position; demuxer errors become ``VideoDecodeError``."""
        if container is None:
            container, stream = self._live(), self._stream
        demux = container.demux(stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return
            except AV_ERRORS as exc:
                raise VideoDecodeError(self.path, f"demuxing failed ({describe(exc)})") from None
            yield packet

    def _decode(self, packet) -> list:
        try:
            frames = packet.decode()
            self.frames_decoded += len(frames)
            return frames
        except AV_ERRORS as exc:
            raise VideoDecodeError(self.path, f"decoding failed near pts {packet.pts} ({describe(exc)})") from None

    @property
    def rotation(self) -> int:
        """Counter-clockwise quarter turns applied to every frame (the display matrix; 0 with ``orientation="raw"``).
        Known from the first frame decoded; asking before any decode decodes one frame."""
        if self._turns is None:
            self._turns = self._first_frame_turns()
        return self._turns

    @property
    def height(self) -> int:
        return self._coded[1] if self.rotation % 2 else self._coded[0]

    @property
    def width(self) -> int:
        return self._coded[0] if self.rotation % 2 else self._coded[1]

    def _turns_of(self, frame) -> int:
        note = rotation_note(frame.rotation)
        if note:
            self.notes = (*self.notes, note)
            warn_once(self.path, note)
        return quarter_turns(frame.rotation)

    def _first_frame_turns(self) -> int:
        # 0 also when the first frame does not decode: that error comes when frames are asked for, as before.
        self._rewind()
        decoded = self.frames_decoded
        try:
            for packet in self._packets():
                for frame in self._decode(packet):
                    return self._turns_of(frame)
            return 0
        except VideoDecodeError:
            return 0
        finally:
            self._rewind()
            self.frames_decoded = decoded

    def _rewind(self) -> None:
        """Back to the first packet. Reopening is the one rewind every demuxer honours, and costs well under 1 ms."""
        self._open()

    def _seek_to(self, pts: int) -> None:
        try:
            self._live().seek(pts, stream=self._stream, backward=True, any_frame=False)
        except AV_ERRORS:
            self._rewind()  # some demuxers cannot seek; start from the beginning instead

    def _to_array(self, frame, index: int, size: tuple[int, int] | None) -> np.ndarray:
        if frame.is_corrupt:
            raise VideoDecodeError(self.path, f"frame {index} is corrupt (damaged data in the file)")
        # Always name the output size: a stream whose frame size changes midway still gives same-sized frames.
        if self._turns is None:
            self._turns = self._turns_of(frame)
        height, width = size if size is not None else (self.height, self.width)
        if self._turns % 2:  # a quarter turn: the coded picture is the displayed one on its side
            height, width = width, height
        try:
            rgb = self._reformatter.reformat(
                frame, width=width, height=height, format="rgb24", interpolation="BILINEAR", threads=self._num_threads
            )
            # A view of the RGB plane (rows padded to line_size), not to_ndarray()'s copy: np.stack copies anyway.
            plane = rgb.planes[0]
            rows = np.frombuffer(plane, np.uint8, count=plane.line_size * height).reshape(height, plane.line_size)
            picture = rows[:, : width * 3].reshape(height, width, 3)
            return np.rot90(picture, self._turns) if self._turns else picture
        except AV_ERRORS as exc:
            raise VideoDecodeError(self.path, f"cannot convert frame {index} to RGB ({describe(exc)})") from None

    # -- public API ---------------------------------------------------------------------------------------------
    def _get_frames(self, idx: list[int], size: tuple[int, int] | None) -> torch.Tensor:
        wanted = sorted(set(idx))
        got: dict[int, np.ndarray] = {}
        if self._index.pts is not None:
            try:
                for run in self._index.runs(wanted):
                    got.update(self._decode_run(run, size))
            except NoTimestamps:
                self._index.pts = None  # the decoder drops timestamps on this stream: number frames by counting
        if self._index.pts is None:
            got = self._decode_counting(wanted, size)
        return torch.from_numpy(np.stack([got[i] for i in idx]))

    def iter_frames(self, chunk_size: int = 32, size: tuple[int, int] | None = None) -> Iterator[torch.Tensor]:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        size = check_size(size)
        chunk: list[np.ndarray] = []
        for i, frame in self._sequential():
            chunk.append(self._to_array(frame, i, size))
            if len(chunk) == chunk_size:
                yield torch.from_numpy(np.stack(chunk))
                chunk = []
        if chunk:
            yield torch.from_numpy(np.stack(chunk))

    def verify(self) -> None:
        """Decode every frame (no RGB conversion) and raise ``VideoDecodeError`` at the first bad or missing one."""
        for i, frame in self._sequential():
            if frame.is_corrupt:
                raise VideoDecodeError(self.path, f"frame {i} is corrupt (damaged data in the file)")

    def _sequential(self) -> Iterator[tuple[int, av.VideoFrame]]:
        """``(display index, frame)`` for the whole video from its start; a frame that never comes out raises.

        Reads from a container of its own (closed when the generator ends or is dropped), so ``get_frames`` calls
        in between do not disturb it.
        """
        self._live()
        container, stream = self._open_stream()
        try:
            position = self._index.position if self._index.pts is not None else None
            expected = 0
            for packet in self._packets(container, stream):
                for frame in self._decode(packet):
                    i = expected if position is None or frame.pts is None else position.get(frame.pts)
                    if i is None or i < expected:
                        continue  # a frame outside the index (e.g. a broken leading picture): not part of the video
                    if i > expected:
                        raise VideoDecodeError(self.path, f"frame {expected} could not be decoded")
                    yield i, frame
                    expected += 1
                    if expected == self.num_frames:
                        return
            raise VideoDecodeError(self.path, f"decoder produced {expected} of {self.num_frames} frames")
        finally:
            container.close()

    # -- decoding strategies ------------------------------------------------------------------------------------
    def _decode_run(self, run: list[int], size: tuple[int, int] | None) -> dict[int, np.ndarray]:
        """Decode the frames of one run (sorted display indices) after one seek."""
        index = self._index
        key = index.key_at[run[0]]
        aim = index.pts[key] if key >= 0 else None
        for target in index.seek_targets.get(key, []):
            self._seek_to(target)
            result = self._collect(run, aim, size)
            if result is not None:
                return result
        self._rewind()  # no keyframe before the run, or every seek overshot: decode from the start
        result = self._collect(run, None, size)
        assert result is not None  # decoding from the start never overshoots
        return result

    def _collect(self, run: list[int], aim: int | None, size) -> dict[int, np.ndarray] | None:
        """Decode from the current position until every frame of ``run`` is out.

        Returns None when the demuxer landed on a keyframe past ``aim`` (the pts of the keyframe aimed at), or on
        no keyframe at all.
        """
        index = self._index
        todo = {index.pts[i]: i for i in run}
        last = index.pts[run[-1]]
        out: dict[int, np.ndarray] = {}
        started = False
        for packet in self._packets():
            if not started and packet.size:
                if not packet.is_keyframe:
                    continue  # landed mid-GOP: frames before the next keyframe would decode from missing references
                landed = packet.pts if packet.pts is not None else packet.dts
                if aim is not None and landed is not None and landed > aim:
                    return None
                started = True
            if not started:
                continue
            past_last = False
            for frame in self._decode(packet):
                pts = frame.pts
                if pts in todo:
                    i = todo.pop(pts)
                    out[i] = self._to_array(frame, i, size)
                elif pts is None or pts not in index.position:
                    raise NoTimestamps  # frames cannot be matched to packets: number them by counting instead
                past_last = past_last or pts > last
            if not todo:
                return out
            if past_last:
                break  # output comes in display order: a wanted frame that has not come out by now never will
        if not started:
            return None  # the seek went past every keyframe (to the end): start over
        missing = sorted(todo.values())
        raise VideoDecodeError(self.path, f"frame {missing[0]} could not be decoded ({len(missing)} missing)")

    def _decode_counting(self, wanted: list[int], size) -> dict[int, np.ndarray]:
        """Counting mode: number decoder output from the start of the file; stop after the last wanted frame."""
        self._rewind()
        todo = set(wanted)
        out: dict[int, np.ndarray] = {}
        n = 0
        for packet in self._packets():
            for frame in self._decode(packet):
                if n in todo:
                    todo.discard(n)
                    out[n] = self._to_array(frame, n, size)
                n += 1
                if not todo:
                    return out
        raise VideoDecodeError(self.path, f"frame {min(todo)} could not be decoded (decoder produced {n} frames)")


def keyframe_indices(decoder: PyAVDecoder) -> list[int]:
    """Display indices of the keyframes (for benchmarks and diagnostics); empty in counting mode."""
    index = decoder._index
    return sorted({k for k in index.key_at if k >= 0}) if index.pts is not None else []


def display_quarter_turns(path: str | os.PathLike) -> int:
    """The quarter turns of ``path``'s display matrix (0 when none), from its first decoded frame."""
    with PyAVDecoder(path) as decoder:
        return decoder.rotation
