"""Clip-decoding benchmark: clips/s of each backend vs the naive loader and the seek-and-decode floor.

The same code and flags as ``vidrcnn bench-decode`` (vidrcnn/commands/bench_decode.py, whose docstring is the full usage);
``python tools/bench_decode.py --help`` lists the options.
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.bench_decode import main

__all__ = ["main", "run_tool"]  # `vidrcnn bench-decode` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
