"""Classify one video of any length with a trained checkpoint: top-K labels and a timeline of predictions.

The same code and flags as ``vidrcnn infer`` (vidrcnn/commands/infer.py, whose docstring is the full usage);
``python tools/infer.py --help`` lists the options.
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.infer import main

__all__ = ["main", "run_tool"]  # `vidrcnn infer` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
