"""Clip-decoding benchmark: clips/s of each backend vs the naive loader and the seek-and-decode floor.

Generates UCF101-like videos (320x240, 25 fps, MPEG-4 Part 2 AVI, GOP 12, ~7 s) in a temp dir unless given files,
then prints a markdown table for 16-frame clips from the middle of each video and at random positions.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from vidrcnn.io.bench import make_ucf_like, markdown_table, run_benchmark
from vidrcnn.io.decord_backend import decord_available


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path, help="videos to use instead of generated ones")
    parser.add_argument("--num-videos", type=int, default=4, help="generated videos (default 4)")
    parser.add_argument("--seconds", type=float, default=7.0, help="length of generated videos (default 7)")
    parser.add_argument("--clip-len", type=int, default=16)
    parser.add_argument("--clips", type=int, default=8, help="clips per video and mode (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the best counts (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--frames", action="store_true",
                        help="also time the same clips from JPEG and PNG frame folders extracted from the videos")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    small = [f"--{name.replace('_', '-')}" for name in ("num_videos", "clip_len", "clips", "repeats", "threads")
             if getattr(args, name) < 1] + (["--seconds"] if args.seconds <= 0 else [])
    if small:
        parser.error(f"{', '.join(small)} must be positive")
    torch.set_num_threads(args.threads)

    backends = ["pyav", "auto"] + (["decord"] if decord_available() else [])
    with tempfile.TemporaryDirectory(prefix="bench_decode_") as tmp:
        videos = args.videos or make_ucf_like(tmp, num_videos=args.num_videos, seconds=args.seconds)
        frame_folders = None
        if args.frames:  # the same videos extracted to frame folders: what pre-extraction buys
            from vidrcnn.io.extract import extract_frames

            frame_folders = {}
            for fmt in ("jpg", "png"):
                folders = {str(v): str(Path(tmp) / f"{fmt}_{i}") for i, v in enumerate(videos)}
                for v, folder in folders.items():
                    extract_frames(v, folder, fmt=fmt)
                frame_folders[f"frames ({fmt})"] = folders
        rows = run_benchmark(videos, backends, clip_len=args.clip_len, clips=args.clips, repeats=args.repeats,
                             frame_folders=frame_folders)
    print(markdown_table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0
