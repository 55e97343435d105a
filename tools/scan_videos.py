"""List the videos under DIR that cannot be decoded: one line per bad file with the cause, then a summary.

Exit code 1 if any video is bad, 0 otherwise; readable videos with wrong metadata (a frame rate outside 1-1000 fps,
or one its timestamps contradict) are listed as warnings. ``--cache FILE`` remembers results (keyed by path, size
and mtime), so a second scan of an unchanged dataset reads nothing. Example:

    python tools/scan_videos.py data/UCF101 --cache data/UCF101/.probe-cache.json
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.scan import main

__all__ = ["main", "run_tool"]  # `vidrcnn scan` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
