"""Evaluate a checkpoint on its test split as UCF101 results are reported (softmax averaged over K clips per video).

    python tools/test.py --checkpoint CKPT [--json OUT.json] [--confusion OUT.png] [--overwrite] [key=value ...]

The checkpoint holds the weights, classes, preprocessing and training config; ``key=value`` overrides it, e.g.
``data.root=/data/UCF101 data.split=2 eval.num_clips=10 eval.three_crop=true data.num_workers=4``. Unreadable test
videos count as wrong and are listed. The confusion matrix PNG goes to --confusion, by default next to the JSON
(OUT.confusion.png) or, without --json, next to the checkpoint (CKPT_STEM.confusion.png).
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.test import main

__all__ = ["main", "run_tool"]  # `vidrcnn test` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
