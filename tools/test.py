"""Evaluate a checkpoint on its test split as UCF101 results are reported (softmax averaged over K clips per video).

The same code and flags as ``vidrcnn test`` (vidrcnn/commands/test.py, whose docstring is the full usage);
``python tools/test.py --help`` lists the options.
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.test import main

__all__ = ["main", "run_tool"]  # `vidrcnn test` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
