"""The end-to-end demo behind ``make demo``: data, training, testing and inference, on an embedded default.

The same code and flags as ``vidrcnn demo`` (vidrcnn/commands/demo.py, whose docstring is the full usage);
``python tools/demo.py --help`` lists the options.
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.demo import main

__all__ = ["main", "run_tool"]  # `vidrcnn demo` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
