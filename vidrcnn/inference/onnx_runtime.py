"""Run a model exported by ``tools/export.py`` with onnxruntime, without the model code (``tools/infer.py --onnx``).

:class:`OnnxModel` offers what inference uses of a PyTorch model: ``stream(frames, state)`` for an exported
streaming step (it feeds the chunk's frames one at a time and carries the named state), or a call on a batch of
clips for an exported clip model. :func:`load_onnx_predictor` builds the same :class:`~vidrcnn.inference.predictor.Predictor`
as a checkpoint does, from the file's metadata (vidrcnn/inference/export.py describes the graph and its metadata).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from vidrcnn.errors import CheckpointError

METADATA_KEY = "vidrcnn"
STATE_IN, STATE_OUT = "state.", "next_state."
METADATA_KEYS = ("model", "kind", "classes", "preprocess")  # what inference reads from the metadata
PREPROCESS_KEYS = ("size", "num_frames")


def session_for(path: str | os.PathLike, *, threads: int | None = None):
    """An onnxruntime CPU session on ``path`` (``threads``: intra-op threads, None for onnxruntime's default)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])


def read_metadata(session) -> dict[str, Any]:
    """The ``vidrcnn`` metadata of an onnxruntime session's model; ValueError when it has none."""
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise ValueError("the ONNX model carries no vidrcnn metadata (not written by tools/export.py)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"its vidrcnn metadata is not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"its vidrcnn metadata is a JSON {type(meta).__name__}, not an object")  # noqa: TRY004 (a bad file, reported as such)
    return meta


def check_metadata(meta: Mapping[str, Any]) -> None:
    """ValueError naming the keys inference needs that ``meta`` lacks."""
    pre = meta.get("preprocess")
    missing = [k for k in METADATA_KEYS if k not in meta] + [
        f"preprocess.{k}" for k in PREPROCESS_KEYS if isinstance(pre, dict) and k not in pre]
    if missing:
        raise ValueError(f"its vidrcnn metadata lacks {', '.join(missing)} (written by another version of "
                         "tools/export.py, or edited)")


class OnnxModel:
    """An exported model on onnxruntime, with the interface inference uses (``is_causal``, ``stream``, a call)."""

    def __init__(self, session, meta: Mapping[str, Any]):
        self.session = session
        self.is_causal = meta["kind"] == "stream"
        self.names = [s["name"] for s in meta.get("state", [])]
        self.sequence_start = bool(meta.get("sequence_start"))  # a step for Triton: START is 1 on the first frame
        self._initial = {s["name"]: np.zeros(s["shape"], dtype=np.dtype(s["dtype"])) for s in meta.get("state", [])}

    def eval(self) -> OnnxModel:
        return self

    def stream(self, frames: torch.Tensor, state: dict[str, np.ndarray] | None = None
               ) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        """Per-frame logits ``(1, T, K)`` for ``frames`` ``(1, 3, T, H, W)`` continuing from ``state`` (None: the
        zero initial state), and the state after the last frame; as ``model.stream``."""
        first = state is None
        state = dict(self._initial) if state is None else state
        x = frames.detach().float().cpu().numpy()
        out = []
        for t in range(x.shape[2]):
            feeds = {"frames": np.ascontiguousarray(x[:, :, t:t + 1]), **{STATE_IN + n: v for n, v in state.items()}}
            if self.sequence_start:
                feeds["START"] = np.array([1.0 if first and t == 0 else 0.0], dtype=np.float32)
            logits, *new = self.session.run(None, feeds)
            state = dict(zip(self.names, new, strict=True))
            out.append(logits)
        return torch.from_numpy(np.concatenate(out, axis=1)), state

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"clips": clips.detach().float().cpu().numpy()})[0])


def load_onnx_predictor(path: str | os.PathLike):
    """A :class:`~vidrcnn.inference.predictor.Predictor` on onnxruntime from an ONNX file of ``tools/export.py``; every problem
    with the file is a :class:`CheckpointError` naming it."""
    from vidrcnn.data.transforms import build_transform
    from vidrcnn.inference.predictor import Predictor, model_stride

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(path, "no such ONNX file" if not os.path.exists(path) else "not a file")
    try:
        session = session_for(path)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(path, f"not a readable ONNX model ({first})") from None
    try:
        meta = read_metadata(session)
        check_metadata(meta)
        pre = meta["preprocess"]
        transform = build_transform(train=False, size=int(pre["size"]), resize=pre.get("resize"),
                                    **{k: pre[k] for k in ("mean", "std") if pre.get(k) is not None})
        return Predictor(model=OnnxModel(session, meta), classes=[str(c) for c in meta["classes"]],
                         transform=transform, num_frames=int(pre["num_frames"]), stride=model_stride(pre),
                         train_fps=float(pre["fps"]) if pre.get("fps") else None, name=str(meta["model"]),
                         preprocess=dict(pre))
    except ValueError as exc:  # read_metadata's own findings
        raise CheckpointError(path, str(exc)) from None
    except (KeyError, TypeError) as exc:
        raise CheckpointError(path, f"incompatible vidrcnn metadata ({type(exc).__name__}: {exc})") from None


__all__ = ["METADATA_KEY", "OnnxModel", "load_onnx_predictor", "read_metadata", "session_for"]
