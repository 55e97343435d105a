"""The comparison study: train every family on the synthetic dataset over 3 seeds and write docs/reports/model_comparison.md.

The same code and flags as ``vidrcnn study`` (vidrcnn/commands/study.py, whose docstring is the full usage);
``python tools/study.py --help`` lists the options.
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.study import main

__all__ = ["main", "run_tool"]  # `vidrcnn study` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
