"""Export a trained checkpoint to ONNX and check it against PyTorch before reporting success.

The same code and flags as ``vidrcnn export`` (vidrcnn/commands/export.py, whose docstring is the full usage);
``python tools/export.py --help`` lists the options.
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.export import main

__all__ = ["main", "run_tool"]  # `vidrcnn export` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
