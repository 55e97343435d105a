"""A Triton Inference Server model repository for an exported model (``tools/export.py --triton DIR``).

On a fleet, carrying each stream's state is the inference server's job: Triton's sequence batcher with *implicit
state* keeps the state of every sequence (a client's ``sequence_id``) between its requests, for ONNX models too. The
exported streaming step (vidrcnn/inference/export.py) has exactly that form: each ``state.<name>`` input is the
``next_state.<name>`` output of the previous frame, and the first frame of a stream starts from zeros. So the
repository declares, in ``DIR/<model>/config.pbtxt``:

- the step's inputs and outputs (``frames``, ``logits``) with their ONNX names, dtypes and shapes (batch 1 inside the
  shapes: ``max_batch_size: 0``);
- ``sequence_batching`` with one ``state`` entry per state tensor, ``state.<name>`` -> ``next_state.<name>``, whose
  ``initial_state`` is zeros, and the control input ``START`` (``CONTROL_SEQUENCE_START``): the step exported for
  Triton (:class:`~vidrcnn.inference.export.SequenceStartStep`) replaces the state it is given by zeros on the
  request flagged ``sequence_start``, whatever the server holds then; ``max_sequence_idle_microseconds`` ends
  abandoned streams;
- the ``onnxruntime`` backend on the CPU, :data:`INSTANCES` instances: the step's batch is 1, so each instance
  holds one stream at a time and further streams wait for a free one (raise ``count``, or ``kind: KIND_GPU``).

A clip model (a 3-D CNN) gets a plain config with a dynamic batch. The model file is ``DIR/<model>/1/model.onnx``.
Triton itself does not run in this project's environment; the README (Export) gives the command to start it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TRITON_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "bfloat16": "TYPE_BF16", "int64": "TYPE_INT64",
                 "int32": "TYPE_INT32", "bool": "TYPE_BOOL"}
IDLE_MICROSECONDS = 60_000_000  # a stream silent for a minute is ended and its state freed
# The step's batch is 1 (max_batch_size 0): each model instance is one sequence slot, so this many streams run at
# once and the others wait for a slot. Raise it for more streams.
INSTANCES = 4


def _dims(shape: Sequence[int]) -> str:
    return "[ " + ", ".join(str(int(d)) for d in shape) + " ]"


def _tensor(name: str, dtype: str, shape: Sequence[int]) -> str:
    return f'{{ name: "{name}" data_type: {TRITON_DTYPES[dtype]} dims: {_dims(shape)} }}'


def triton_config(meta: Mapping[str, Any], io: Mapping[str, tuple[str, list[int]]]) -> str:
    """The ``config.pbtxt`` text for a model exported with metadata ``meta``; ``io``: each graph input's and
    output's ``(dtype, shape)`` by name, as the ONNX file declares them (a dynamic dimension is -1)."""
    name = meta["model"]
    if meta["kind"] == "stream":
        lines = [f'name: "{name}"', 'backend: "onnxruntime"', "max_batch_size: 0",
                 f"input [ {_tensor('frames', *io['frames'])} ]", f"output [ {_tensor('logits', *io['logits'])} ]",
                 "sequence_batching {", f"  max_sequence_idle_microseconds: {IDLE_MICROSECONDS}",
                 '  control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1 ] } ] } ]',
                 "  state ["]
        states = []
        for s in meta["state"]:
            dtype, shape = io[f"state.{s['name']}"]
            states.append(
                f'    {{ input_name: "state.{s["name"]}" output_name: "next_state.{s["name"]}" '
                f"data_type: {TRITON_DTYPES[dtype]} dims: {_dims(shape)}\n"
                f'      initial_state: {{ name: "zeros" data_type: {TRITON_DTYPES[dtype]} dims: {_dims(shape)} '
                "zero_data: true } }")
        lines += [",\n".join(states), "  ]", "}"]
    else:  # a clip model: a dynamic batch, the batch dimension left out of the shapes
        (dtype, shape), (out_dtype, out_shape) = io["clips"], io["logits"]
        lines = [f'name: "{name}"', 'backend: "onnxruntime"', "max_batch_size: 8",
                 f"input [ {_tensor('clips', dtype, shape[1:])} ]", f"output [ {_tensor('logits', out_dtype, out_shape[1:])} ]",
                 "dynamic_batching { }"]
    return "\n".join([*lines, f"instance_group [ {{ kind: KIND_CPU count: {INSTANCES} }} ]", ""])


def onnx_io(path: str | os.PathLike) -> dict[str, tuple[str, list[int]]]:
    """Each graph input's and output's ``(dtype, shape)`` of the ONNX file at ``path`` (-1 for a dynamic dimension)."""
    import onnx

    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    out = {}
    for value in [*graph.input, *graph.output]:
        t = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
        out[value.name] = (dtype, [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim])
    return out


def write_triton_repository(onnx_path: str | os.PathLike, repository: str | os.PathLike,
                            meta: Mapping[str, Any]) -> Path:
    """Put the checked ONNX file at ``repository/<model>/1/model.onnx`` beside its ``config.pbtxt``; returns the
    model's folder. The caller checks first that the folder may be written (an existing one is replaced only when
    asked: ``tools/export.py --overwrite``)."""
    folder = Path(repository) / meta["model"]
    if folder.exists():  # replaced whole: a stale version folder would be the one Triton serves
        shutil.rmtree(folder)
    (folder / "1").mkdir(parents=True)
    config = triton_config(meta, onnx_io(onnx_path))
    shutil.copyfile(onnx_path, folder / "1" / "model.onnx")
    (folder / "config.pbtxt").write_text(config, encoding="utf-8")
    return folder


__all__ = ["onnx_io", "triton_config", "write_triton_repository"]
