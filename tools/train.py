"""Train a model: ``python tools/train.py --config CONFIG [--out DIR] [--resume] [key=value ...]``.

The same code and flags as ``vidrcnn train`` (vidrcnn/commands/train.py, whose docstring is the full usage);
``python tools/train.py --help`` lists the options.
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.train import main

__all__ = ["main", "run_tool"]  # `vidrcnn train` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
