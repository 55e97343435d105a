"""Clip-decoding benchmark: clips/s for each backend against two references measured in the same run.

* ``naive``: decode the whole video to RGB, then index it (what ``torchvision.io.read_video`` + slicing does).
* ``floor``: plain PyAV, minimal code: seek to the keyframe before the clip, decode up to its last frame, convert
  only the clip's frames. It trusts the header frame rate to map indices to timestamps, so it is fast but not
  frame-accurate in general; it is the cost a correct loader cannot beat by much.

Both references convert to RGB with one reused ``VideoReformatter``, as the PyAV backend does (``frame.to_ndarray``
builds a new swscale context per frame, which costs more than decoding it): the comparison is then about what gets
decoded, not about how pixels get converted.

Every clip opens the file anew, as a dataset's ``__getitem__`` does. Used by ``tools/bench_decode.py``.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from vidrcnn.io.backends import open_video
from vidrcnn.io.writer import write_video

Loader = Callable[[str, list[int]], object]


def make_ucf_like(out_dir: str | Path, *, num_videos: int = 4, seconds: float = 7.0, fps: int = 25,
                  size: tuple[int, int] = (240, 320), gop: int = 12, seed: int = 0) -> list[Path]:
    """Write MPEG-4 Part 2 AVIs shaped like UCF101's (320x240, 25 fps, GOP 12, ~7 s) with moving content."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = size
    n = round(seconds * fps)
    yy, xx = np.mgrid[0:h, 0:w]
    paths = []
    for v in range(num_videos):
        base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)[:h, :w]
        frames = np.empty((n, h, w, 3), np.uint8)
        for t in range(n):  # textured background panning, plus a moving bright disc: realistic motion for the codec
            frame = np.roll(base, shift=(t * 2, t * 3), axis=(0, 1))
            cy, cx = h / 2 + h / 3 * math.sin(t / 9 + v), w / 2 + w / 3 * math.cos(t / 11 + v)
            frame[(yy - cy) ** 2 + (xx - cx) ** 2 < (h / 8) ** 2] = 255
            frames[t] = frame
        path = out_dir / f"v_Bench_g{v:02d}_c01.avi"
        write_video(path, frames, fps=fps, codec="mpeg4", gop=gop, bit_rate=600_000)
        paths.append(path)
    return paths


_REFORMATTER = VideoReformatter()


def _rgb(frame) -> np.ndarray:
    return _REFORMATTER.reformat(frame, format="rgb24", threads=1).to_ndarray()


def naive_loader(path: str, indices: list[int]) -> torch.Tensor:
    with av.open(path) as container:
        frames = [_rgb(f) for f in container.decode(video=0)]
    return torch.from_numpy(np.stack([frames[i] for i in indices]))


def floor_loader(path: str, indices: list[int]) -> torch.Tensor:
    first, last = min(indices), max(indices)
    with av.open(path) as container:
        stream = container.streams.video[0]
        ticks_per_frame = 1 / (stream.average_rate * stream.time_base)
        container.seek(int(first * ticks_per_frame), stream=stream, backward=True)
        out = {}
        for frame in container.decode(stream):
            i = round(frame.pts / ticks_per_frame)
            if first <= i:
                out[i] = _rgb(frame)
            if i >= last:
                break
    return torch.from_numpy(np.stack([out[i] for i in indices]))


def backend_loader(backend: str) -> Loader:
    def load(path: str, indices: list[int]) -> torch.Tensor:
        with open_video(path, backend) as video:
            return video.get_frames(indices)

    return load


def clip_plan(num_frames: int, clip_len: int, mode: str, n: int, seed: int = 0) -> list[list[int]]:
    """``n`` clips of ``clip_len`` consecutive frames: centred (``middle``) or at random starts (``random``)."""
    rng = random.Random(seed)
    starts = [(num_frames - clip_len) // 2] * n if mode == "middle" else [
        rng.randrange(num_frames - clip_len + 1) for _ in range(n)
    ]
    return [list(range(s, s + clip_len)) for s in starts]


def measure(load: Loader, jobs: list[tuple[str, list[int]]], *, warmup: int = 2, repeats: int = 3
            ) -> tuple[float, float]:
    """``(clips/s, CPU ms per clip)``, each the best of ``repeats`` passes over ``jobs`` after ``warmup`` clips.

    Best, not mean: on a shared machine other processes only ever slow a pass down. CPU time (this process, all
    threads) is the steadier figure there; wall time is what a data loader feels.
    """
    for path, idx in jobs[:warmup]:
        load(path, idx)
    wall = cpu = math.inf
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for path, idx in jobs:
            load(path, idx)
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return len(jobs) / wall, 1000 * cpu / len(jobs)


def frame_folder_loader(folders: dict[str, str]) -> Loader:
    """The same clips from the frame folders extracted from the videos (``folders``: video path -> folder)."""
    def load(path: str, indices: list[int]) -> torch.Tensor:
        with open_video(folders[path]) as video:
            return video.get_frames(indices)
    return load


def run_benchmark(paths: list[Path], backends: list[str], *, clip_len: int = 16, clips: int = 8,
                  repeats: int = 3, frame_folders: dict[str, dict[str, str]] | None = None) -> list[dict]:
    """One row per loader and mode (``middle``, ``random``): clips/s, CPU ms/clip, ratios to floor and naive.

    ``x floor (CPU)`` is floor CPU time / loader CPU time, so above 1 means cheaper than the floor as well.
    ``frame_folders``: ``{row name: {video path: its frame folder}}``, a row each (``tools/extract_frames.py``).
    """
    with open_video(paths[0], "pyav") as video:
        num_frames = video.num_frames
    loaders: dict[str, Loader] = {"naive": naive_loader, "floor": floor_loader}
    loaders.update({b: backend_loader(b) for b in backends})
    loaders.update({name: frame_folder_loader(folders) for name, folders in (frame_folders or {}).items()})
    rows = []
    for mode in ("middle", "random"):
        jobs = [(str(p), idx) for p in paths for idx in clip_plan(num_frames, clip_len, mode, clips, seed=len(rows))]
        speed = {name: measure(load, jobs, repeats=repeats) for name, load in loaders.items()}
        (floor, floor_cpu), (naive, _) = speed["floor"], speed["naive"]
        for name, (value, cpu_ms) in speed.items():
            rows.append({"loader": name, "mode": mode, "clips_per_s": value, "cpu_ms_per_clip": cpu_ms,
                         "vs_floor": value / floor, "vs_floor_cpu": floor_cpu / cpu_ms, "vs_naive": value / naive})
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| loader | clips | clips/s | CPU ms/clip | x floor | x floor (CPU) | x naive |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['loader']} | {r['mode']} | {r['clips_per_s']:.1f} | {r['cpu_ms_per_clip']:.1f} | "
                     f"{r['vs_floor']:.2f} | {r['vs_floor_cpu']:.2f} | {r['vs_naive']:.2f} |")
    return "\n".join(lines)
