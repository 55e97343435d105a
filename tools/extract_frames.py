"""Extract every video under DIR into folders of frames under OUT, and write the list that trains on them.

The same code and flags as ``vidrcnn extract-frames`` (vidrcnn/commands/extract_frames.py, whose docstring is the full usage);
``python tools/extract_frames.py --help`` lists the options.
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.extract_frames import main

__all__ = ["main", "run_tool"]  # `vidrcnn extract-frames` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
