"""Classify one video of any length with a trained checkpoint: top-K labels and a timeline of predictions.

    python tools/infer.py VIDEO --checkpoint CKPT [--topk K] [--json] [--out-video OUT.mp4 [--overwrite]]
    python tools/infer.py VIDEO --onnx MODEL.onnx ...   # a model of tools/export.py, on onnxruntime

Causal models stream frame by frame with carried state; others run sliding windows (see vidrcnn/inference/ for how
the video-level top-K is formed). ``--json`` prints exactly one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.infer import main

__all__ = ["main", "run_tool"]  # `vidrcnn infer` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
