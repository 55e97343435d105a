"""Serve one model over HTTP and WebSocket: predictions for uploaded videos, live streams and a live page.

The same code and flags as ``vidrcnn serve`` (vidrcnn/commands/serve.py, whose docstring is the full usage);
``python tools/serve.py --help`` lists the options.
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.serve import main

__all__ = ["main", "run_tool"]  # `vidrcnn serve` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
