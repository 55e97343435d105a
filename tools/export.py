"""Export a trained checkpoint to ONNX and check it against PyTorch before reporting success.

    python tools/export.py --checkpoint CKPT --out model.onnx [--video VIDEO] [--overwrite]

Causal models (``rcn_*``, ``cnn_lstm_*``) become one streaming step with the state as named tensors; the others the
clip model with a dynamic batch (vidrcnn/inference/export.py says how). The file carries the model name, class names and
preprocessing in its metadata. The export is checked with onnxruntime on random clips, and on the first clip of
``--video`` when given, chunk after chunk for a stream: the largest difference of the logits is printed, and above
1e-4 the export fails and no file is written. Needs ``pip install -e '.[deploy]'``.
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.export import main

__all__ = ["main", "run_tool"]  # `vidrcnn export` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
