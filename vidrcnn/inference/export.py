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

from vidrcnn.errors import ExportError
from vidrcnn.inference.onnx_runtime import METADATA_KEY, STATE_IN, STATE_OUT, OnnxModel, read_metadata, session_for
from vidrcnn.inference.stream_step import StreamStep, is_streamable

TOLERANCE = 1e-4  # max abs difference of the fp32 logits between onnxruntime and PyTorch


class SequenceStartStep(nn.Module):
    """The streaming step with a sequence-start input, as Triton's sequence batcher drives one (its
    ``CONTROL_SEQUENCE_START``): ``START`` ``(1,)`` float32 is 1 on a stream's first frame, where the state passed in
    is replaced by zeros whatever it holds (a server's first state may be uninitialised memory), and 0 after."""

    def __init__(self, step: StreamStep):
        super().__init__()
        self.step = step

    def forward(self, frames: Tensor, start: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        fresh = start.reshape(()) > 0.5
        return self.step(frames, *(torch.where(fresh, torch.zeros_like(s), s) for s in state))


def export_onnx(model: nn.Module, path: str | os.PathLike, *, frame_size: tuple[int, int], num_frames: int,
                metadata: Mapping[str, Any], sequence_start: bool = False) -> dict[str, Any]:
    """Write ``model`` (eval mode) to ``path`` as ONNX, with ``metadata`` (model, classes, preprocess) and what the
    export adds (kind, state); returns that metadata. ``sequence_start``: a stream step takes the ``START`` input of
    :class:`SequenceStartStep` (for a Triton repository). Raises :class:`ExportError` naming the part that failed."""
    import onnx

    model = model.eval()
    h, w = frame_size
    if is_streamable(model):
        step = StreamStep(model, frame_size=frame_size)
        start = ["START"] if sequence_start else []
        args = (torch.zeros(1, 3, 1, h, w), *([torch.ones(1)] if sequence_start else []), *step.initial_state())
        inputs = ["frames", *start, *(STATE_IN + n for n in step.names)]
        outputs = ["logits", *(STATE_OUT + n for n in step.names)]
        module, dynamic = (SequenceStartStep(step) if sequence_start else step).eval(), None
        info = {"kind": "stream", "state": [{"name": n, "shape": list(step.shapes[n]), "dtype": str(
            step.dtypes[n]).removeprefix("torch.")} for n in step.names], **({"sequence_start": True} if start else {})}
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
    "SequenceStartStep",
    "StreamStep",
    "export_onnx",
    "verify",
]
