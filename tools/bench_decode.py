"""Clip-decoding benchmark: clips/s of each backend vs the naive loader and the seek-and-decode floor.

Generates UCF101-like videos (320x240, 25 fps, MPEG-4 Part 2 AVI, GOP 12, ~7 s) in a temp dir unless given files,
then prints a markdown table for 16-frame clips from the middle of each video and at random positions.
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.bench_decode import main

__all__ = ["main", "run_tool"]  # `vidrcnn bench-decode` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
