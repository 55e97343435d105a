"""Generate the synthetic UCF101-format dataset whose classes need temporal order (see vidrcnn.data.synthetic).

The same code and flags as ``vidrcnn make-synthetic`` (vidrcnn/commands/make_synthetic.py, whose docstring is the full usage);
``python tools/make_synthetic.py --help`` lists the options.
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.make_synthetic import main

__all__ = ["main", "run_tool"]  # `vidrcnn make-synthetic` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
