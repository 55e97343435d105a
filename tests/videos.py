"""Corpus writers for tests: tiny videos in the formats that break decoders, and files that are not videos.

Every good video shows its frame number as 8 big black/white blocks (bit ``b`` of the number in block ``b``), so a
frame identifies itself even through lossy codecs: :func:`frame_number` reads it back.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import av
import numpy as np

from vidrcnn.io.writer import write_video

QUIET_X265 = {"x265-params": "log-level=error"}

# name -> (file name, frames, (H, W), writer kwargs). Kept tiny: the whole corpus writes in about a second.
GOOD_VIDEOS: dict[str, tuple[str, int, tuple[int, int], dict]] = {
    "h264_bframes": ("h264_bframes.mp4", 60, (48, 64), {"codec": "libx264", "gop": 12, "options": {"bf": "3"}}),
    # keyframes only at 0 and 60: a clip near the end must not be fetched by decoding from frame 0
    "h264_longgop": ("h264_longgop.mp4", 90, (48, 64),
                     {"codec": "libx264", "gop": 60, "options": {"bf": "2", "x264-params": "scenecut=0"}}),
    # open GOP: keyframes after the first are not IDR pictures but recovery points. In the HEVC file the frames just
    # before each keyframe in display order are decoded after it and reference the previous GOP (leading pictures;
    # the test checks they exist); a decoder that seeks to such a keyframe for them gets them wrong or not at all
    "h264_opengop": ("h264_opengop.mp4", 60, (48, 64),
                     {"codec": "libx264", "gop": 12, "options": {"bf": "3", "x264-params": "open-gop=1:scenecut=0"}}),
    "h264_opengop_mkv": ("h264_opengop.mkv", 60, (48, 64),
                         {"codec": "libx264", "gop": 12, "options": {"bf": "3", "x264-params": "open-gop=1:scenecut=0"}}),
    "hevc_opengop": ("hevc_opengop.mp4", 60, (48, 64),
                     {"codec": "libx265", "gop": 12,
                      "options": {"x265-params": "log-level=error:open-gop=1:bframes=3:scenecut=0"}}),
    "hevc": ("hevc.mp4", 60, (48, 64), {"codec": "libx265", "gop": 24, "options": QUIET_X265}),
    "vp9": ("vp9.webm", 60, (48, 64), {"codec": "libvpx-vp9", "gop": 30}),
    "mpeg4_avi": ("mpeg4.avi", 60, (48, 64), {"codec": "mpeg4", "gop": 12}),  # UCF101's format
    "mpeg4_bframes_avi": ("mpeg4_bframes.avi", 60, (48, 64), {"codec": "mpeg4", "gop": 12, "options": {"bf": "2"}}),
    "mjpeg": ("mjpeg.avi", 40, (48, 64), {"codec": "mjpeg", "pix_fmt": "yuvj420p"}),
    "odd_h264_444": ("odd_33x25.mkv", 40, (25, 33), {"codec": "libx264", "pix_fmt": "yuv444p", "gop": 10}),
    "odd_ffv1": ("odd_35x27_ffv1.mkv", 30, (27, 35), {"codec": "ffv1", "pix_fmt": "bgr0"}),
    "one_frame": ("one_frame.mp4", 1, (48, 64), {"codec": "libx264"}),
}


def numbered_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """uint8 ``(T, H, W, 3)``: frame ``t`` shows ``t`` in binary as 2 rows of 4 blocks, plus a colour tint."""
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        for b in range(8):
            if (t >> b) & 1:
                r, c = divmod(b, 4)
                frames[t, r * height // 2:(r + 1) * height // 2, c * width // 4:(c + 1) * width // 4] = 255
        frames[t, ..., 2] //= 2  # a tint so that colour conversion bugs (channel order) show up
    return frames


def frame_number(frame: np.ndarray) -> int:
    """Read back the number :func:`numbered_frames` drew (block centres of the green channel, threshold 128)."""
    h, w = frame.shape[:2]
    value = 0
    for b in range(8):
        r, c = divmod(b, 4)
        y, x = r * h // 2 + h // 4, c * w // 4 + w // 8
        if int(frame[y, x, 1]) >= 128:
            value |= 1 << b
    return value


def write_good_corpus(out_dir: Path) -> dict[str, Path]:
    """Write :data:`GOOD_VIDEOS` into ``out_dir``; returns ``{name: path}``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (file_name, n, (h, w), kwargs) in GOOD_VIDEOS.items():
        path = out_dir / file_name
        write_video(path, numbered_frames(n, h, w), fps=25, **kwargs)
        paths[name] = path
    return paths


def noise_video(path: Path, num_frames: int = 40, size: tuple[int, int] = (48, 64), seed: int = 0) -> Path:
    """An MPEG-4 AVI of random noise: big frames, so a few damaged bytes hit picture data."""
    rng = np.random.default_rng(seed)
    write_video(path, rng.integers(0, 256, (num_frames, *size, 3), dtype=np.uint8), codec="mpeg4", gop=12)
    return path


def write_audio_only(path: Path, seconds: float = 0.2, rate: int = 16000) -> Path:
    """An AAC-in-MP4 file (a ``.mp4`` as any scanner would find it) with a sine tone and no video stream."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        t = np.arange(int(seconds * rate)) / rate
        samples = (np.sin(2 * math.pi * 440 * t) * 0.3).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_bad_corpus(out_dir: Path, real_mp4: Path) -> dict[str, Path]:
    """Files that are not decodable videos, by the way they are broken; ``real_mp4`` donates a real file's bytes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    bad = {"missing": out_dir / "missing.mp4", "directory": out_dir / "a_directory.avi"}
    bad["directory"].mkdir(exist_ok=True)
    bad["empty"] = out_dir / "empty.mp4"
    bad["empty"].write_bytes(b"")
    bad["text"] = out_dir / "notes.avi"
    bad["text"].write_text("this is not a video\n" * 50)
    bad["random_bytes"] = out_dir / "random.mp4"
    bad["random_bytes"].write_bytes(np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    data = real_mp4.read_bytes()
    bad["truncated_mp4"] = out_dir / "truncated.mp4"
    bad["truncated_mp4"].write_bytes(data[: len(data) // 2])
    avi = noise_video(out_dir / "_whole.avi").read_bytes()
    bad["truncated_avi"] = out_dir / "truncated.avi"
    bad["truncated_avi"].write_bytes(avi[: len(avi) // 2])
    bad["audio_only"] = write_audio_only(out_dir / "audio_only.mp4")
    damaged = bytearray(avi)
    start, stop = int(len(avi) * 0.45), int(len(avi) * 0.55)
    damaged[start:stop] = np.random.default_rng(2).integers(0, 256, stop - start, dtype=np.uint8).tobytes()
    bad["corrupt_middle"] = out_dir / "corrupt_middle.avi"
    bad["corrupt_middle"].write_bytes(bytes(damaged))
    (out_dir / "_whole.avi").unlink()
    return bad


def write_absurd_fps(out_dir: Path) -> dict[str, Path]:
    """Readable videos whose frame rate is nonsense: an AVI whose header says 1e8 fps (stream header patched, as a
    broken muxer or a hand edit leaves it) and an MKV muxed at 30000 fps (its millisecond timestamps collapse)."""
    import struct

    out_dir.mkdir(parents=True, exist_ok=True)
    avi = out_dir / "fps_1e8.avi"
    write_video(avi, numbered_frames(30, 32, 32), fps=25, codec="mpeg4")
    data = bytearray(avi.read_bytes())
    strh = data.find(b"strh")  # AVISTREAMHEADER: fccType, fccHandler, flags, priority, language, frames, scale, rate
    data[strh + 28:strh + 36] = struct.pack("<II", 1, 10**8)
    avih = data.find(b"avih")  # dwMicroSecPerFrame
    data[avih + 8:avih + 12] = struct.pack("<I", 0)
    avi.write_bytes(bytes(data))
    mkv = out_dir / "fps_30000.mkv"
    with av.open(str(mkv), "w") as container:
        stream = container.add_stream("mpeg4", rate=30000)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for frame in numbered_frames(30, 32, 32):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return {"avi": avi, "mkv": mkv}


def write_rotated(path: Path, degrees: int, num_frames: int = 6, size: tuple[int, int] = (32, 64)) -> np.ndarray:
    """An H.264 file (no B-frames) whose display matrix turns it ``degrees`` counter-clockwise, as phones write
    portrait videos; returns the coded frames (T, H, W, 3): numbered, with a white block in the top-left corner."""
    frames = numbered_frames(num_frames, *size)
    frames[:, :8, :8] = 255
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"bf": "0", "qp": "0"})
        stream.width, stream.height, stream.pix_fmt = size[1], size[0], "yuv444p"
        stream.set_display_rotation(degrees)
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return frames


# Writes SECONDS of a moving pattern at 25 fps as MPEG-TS on stdout, in real time when REALTIME is 1 (as a camera).
_MPEGTS_SCRIPT = """import sys, time, av, numpy as np
seconds, realtime = float(sys.argv[1]), sys.argv[2] == "1"
out = av.open(sys.stdout.buffer, mode="w", format="mpegts")
s = out.add_stream("mpeg2video", rate=25)
s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
yy, xx = np.mgrid[0:48, 0:64]
start = time.perf_counter()
for i in range(int(seconds * 25)):
    img = np.stack([(xx * 4 + i * 3) % 256, (yy * 5 + i * 2) % 256, np.full_like(xx, (i * 7) % 256)], -1)
    for p in s.encode(av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")):
        out.mux(p)
    sys.stdout.flush()
    if realtime:
        time.sleep(max(0.0, start + (i + 1) / 25 - time.perf_counter()))
for p in s.encode():
    out.mux(p)
out.close()
"""


def mpegts_command(seconds: float, *, realtime: bool = False) -> list[str]:
    """A command writing ``seconds`` of a moving pattern at 25 fps as MPEG-TS on its stdout (a live source)."""
    return [sys.executable, "-c", _MPEGTS_SCRIPT, str(seconds), "1" if realtime else "0"]
