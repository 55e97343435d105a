"""Export a trained model to ONNX, for runtimes outside PyTorch (``tools/export.py``), and check the export.

A causal model (every ``rcn_*`` and ``cnn_lstm_*``) is exported as **one streaming step**, not as a clip's time
loop (an exporter would freeze the loop's length): inputs ``frames`` ``(B, 3, 1, H, W)`` and the state as flat named
tensors ``state.<name>``; outputs ``logits`` ``(B, 1, K)`` (the frame's logits, as ``model.stream`` gives them) and
``next_state.<name>``, fed back as the next frame's ``state.<name>``. The initial state is all zeros: every cell
starts from a zero state, and ``state.steps`` = 0 tells the causal stem that no frame came before (it then repeats
the first frame as ``stream`` does). Step after step this equals ``model.stream`` on the whole clip.

Any other model (the 3-D CNNs, the frame-only control) is exported as the clip model: ``clips`` ``(B, 3, T, H, W)``
to ``logits`` ``(B, K)``, with a dynamic batch.

The ONNX file carries what inference needs in its metadata (key ``vidrcnn``, JSON): the model name, the kind
(``"stream"`` or ``"clip"``), the class names, the preprocessing of the checkpoint (size, mean, std, sampling,
stride, frames) and, for a stream, each state tensor's name, shape and dtype.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten_with_path, tree_unflatten

from vidrcnn.errors import ExportError
from vidrcnn.inference.onnx_runtime import METADATA_KEY, STATE_IN, STATE_OUT, OnnxModel, read_metadata, session_for
from vidrcnn.models.cnn_lstm import CNNLSTM
from vidrcnn.models.rcn import RCN, StreamState

TOLERANCE = 1e-4  # max abs difference of the fp32 logits between onnxruntime and PyTorch


def is_streamable(model: nn.Module) -> bool:
    return isinstance(model, (RCN, CNNLSTM))


class StreamStep(nn.Module):
    """One streaming step of a causal model with a flat, tensor-only state (module doc): ``forward(frames,
    *state) -> (logits, *next_state)`` in the order of :attr:`names`; :meth:`initial_state` gives the zeros."""

    def __init__(self, model: nn.Module, *, batch: int = 1, frame_size: tuple[int, int] = (32, 32)):
        super().__init__()
        if not is_streamable(model):
            raise ExportError(f"{type(model).__name__} has no streaming step to export (not an RCN or a CNN+LSTM)")
        self.model = model.eval()
        with torch.no_grad():  # one frame through: the state's structure and shapes
            _, state = model.stream(torch.zeros(batch, 3, 1, *frame_size))
        named, self._layer_spec = self._to_named(state, spec=True)
        self.names = list(named)
        self.shapes = {n: tuple(t.shape) for n, t in named.items()}
        self.dtypes = {n: t.dtype for n, t in named.items()}

    def initial_state(self) -> list[Tensor]:
        return [torch.zeros(self.shapes[n], dtype=self.dtypes[n]) for n in self.names]

    def forward(self, frames: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        named = dict(zip(self.names, state, strict=True))
        logits, new = self.model.stream(frames, self._from_named(named, frames))
        out = self._to_named(new, steps=named["steps"] + frames.shape[2])
        return (logits, *(out[n] for n in self.names))

    def _to_named(self, state, *, spec: bool = False, steps: Tensor | None = None):
        named: dict[str, Tensor] = {}
        layer_spec = None
        if isinstance(self.model, RCN):
            leaves, layer_spec = tree_flatten_with_path(state.layers)
            for path, leaf in leaves:
                named["layers." + ".".join(str(k.idx) for k in path)] = leaf
            if state.pooled_sum is not None:
                named["pooled_sum"] = state.pooled_sum
            stem = state.stem
        else:
            (h, c), stem = state if self.model.stem is not None else (state, None)
            named["lstm.h"], named["lstm.c"] = h, c
        if stem is not None:
            named["stem"] = stem
        named["steps"] = steps if steps is not None else torch.full((1,), int(getattr(state, "steps", 1)))
        return (named, layer_spec) if spec else named

    def _from_named(self, named: Mapping[str, Tensor], frames: Tensor):
        steps = named["steps"]
        stem = named.get("stem")
        if stem is not None:  # before the first frame the causal stem repeats that frame (CausalStem.forward)
            stem = torch.where(steps.view(1, 1, 1, 1, 1) > 0, stem, frames[:, :, :1].expand_as(stem))
        if isinstance(self.model, RCN):
            layers = tree_unflatten([named[n] for n in self.names if n.startswith("layers.")], self._layer_spec)
            return StreamState(layers, named.get("pooled_sum"), steps, stem)
        lstm = (named["lstm.h"], named["lstm.c"])
        return (lstm, stem) if self.model.stem is not None else lstm


def export_onnx(model: nn.Module, path: str | os.PathLike, *, frame_size: tuple[int, int], num_frames: int,
                metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``model`` (eval mode) to ``path`` as ONNX, with ``metadata`` (model, classes, preprocess) and what the
    export adds (kind, state); returns that metadata. Raises :class:`ExportError` naming the part that failed."""
    import onnx

    model = model.eval()
    h, w = frame_size
    if is_streamable(model):
        step = StreamStep(model, frame_size=frame_size)
        args = (torch.zeros(1, 3, 1, h, w), *step.initial_state())
        inputs = ["frames", *(STATE_IN + n for n in step.names)]
        outputs = ["logits", *(STATE_OUT + n for n in step.names)]
        module, dynamic = step.eval(), None
        info = {"kind": "stream", "state": [{"name": n, "shape": list(step.shapes[n]), "dtype": str(
            step.dtypes[n]).removeprefix("torch.")} for n in step.names]}
    else:
        args = (torch.zeros(2, 3, num_frames, h, w),)
        inputs, outputs = ["clips"], ["logits"]
        module, dynamic = model, ({0: torch.export.Dim("batch", min=1)},)
        info = {"kind": "clip"}
    meta = {**metadata, **info}
    target = Path(path)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter reports its passes on stdout
            program = torch.onnx.export(module, args, input_names=inputs, output_names=outputs,
                                        dynamic_shapes=dynamic, dynamo=True, verbose=False)
    except Exception as exc:  # noqa: BLE001 - the exporter fails in many ways; name the model and the cause
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"exporting {meta.get('model', type(model).__name__)} to ONNX failed in torch.onnx.export "
                          f"({type(exc).__name__}: {first})") from None
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"the exported graph of {meta.get('model')} fails onnx.checker ({exc})") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, target)
    return meta


def verify(path: str | os.PathLike, model: nn.Module, inputs: Sequence[Tensor]) -> float:
    """Max abs difference of the logits between onnxruntime and PyTorch on every clip of ``inputs`` (each
    ``(1, 3, T, H, W)``): frame after frame for a stream, whole clips (as a batch, when more than one) otherwise."""
    session = session_for(path)
    runtime = OnnxModel(session, read_metadata(session))
    worst = 0.0
    model = model.eval()
    with torch.no_grad():
        if runtime.is_causal:
            for clip in inputs:
                worst = max(worst, float((runtime.stream(clip)[0] - model.stream(clip)[0]).abs().max()))
        else:
            batch = torch.cat(list(inputs))
            worst = float((runtime(batch) - model(batch)).abs().max())
    return worst


__all__ = [
    "TOLERANCE",
    "StreamStep",
    "export_onnx",
    "verify",
]
