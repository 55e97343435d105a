"""List the videos under DIR that cannot be decoded: one line per bad file with the cause, then a summary.

The same code and flags as ``vidrcnn scan`` (vidrcnn/commands/scan.py, whose docstring is the full usage);
``python tools/scan_videos.py --help`` lists the options.
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.scan import main

__all__ = ["main", "run_tool"]  # `vidrcnn scan` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
