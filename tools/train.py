"""Train a model: ``python tools/train.py --config CONFIG [--out DIR] [--resume] [key=value ...]``.

Multi-GPU or multi-node: ``torchrun --nproc_per_node=N tools/train.py --config CONFIG ...`` (only rank 0 writes).
Writes into DIR (default ``outputs/<config name>``): config.yaml, metrics.jsonl, curves.png, checkpoint_last.pt and
checkpoint_best.pt. ``--resume`` continues from DIR/checkpoint_last.pt. Keys are listed in docs/config.md.
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.train import main

__all__ = ["main", "run_tool"]  # `vidrcnn train` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
