"""ONNX export: one streaming step with a flat state equals ``stream``, through onnxruntime too; tools/export.py."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from checkpoints import CLASSES, write_checkpoint
from toolrun import TOOLS, load_tool

from vidrcnn.inference.export import TOLERANCE, export_onnx, verify
from vidrcnn.inference.onnx_runtime import OnnxModel, read_metadata, session_for
from vidrcnn.inference.stream_step import StreamStep
from vidrcnn.models import get_model

pytestmark = pytest.mark.usefixtures("one_thread")

CAUSAL = [("rcn_gru_s", {}), ("rcn_lstm_s", {"head": "mean"}), ("cnn_lstm_s", {}), ("rcn_rnn_s", {"stem_frames": 1})]


def _model(name: str, **kwargs):
    torch.manual_seed(0)
    model = get_model(name, num_classes=len(CLASSES), **kwargs).eval()
    with torch.no_grad():  # weights far from init, so that a wrong state or a dropped term shows in the logits
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


@pytest.mark.parametrize("name,kwargs", CAUSAL, ids=[n + "".join(f"-{v}" for v in kw.values()) for n, kw in CAUSAL])
def test_the_flat_streaming_step_from_zeros_equals_stream_on_the_whole_clip(name, kwargs):
    model = _model(name, **kwargs)
    step = StreamStep(model, frame_size=(32, 32))
    clip = torch.randn(1, 3, 5, 32, 32)
    with torch.no_grad():
        expected, _ = model.stream(clip)
        state, got = step.initial_state(), []
        assert all(not s.any() for s in state) and "steps" in step.names  # an explicit initial state: all zeros
        for t in range(clip.shape[2]):
            logits, *state = step(clip[:, :, t:t + 1], *state)
            got.append(logits)
    torch.testing.assert_close(torch.cat(got, 1), expected, rtol=1e-5, atol=1e-5)  # frame by frame vs batched convs
    assert int(state[step.names.index("steps")]) == clip.shape[2]


@pytest.mark.parametrize("name,kwargs", [CAUSAL[0], CAUSAL[1], CAUSAL[2], ("frame_avg_s", {})],
                         ids=["rcn_gru_s", "rcn_lstm_s-mean", "cnn_lstm_s", "frame_avg_s"])
def test_onnxruntime_matches_pytorch_chunk_after_chunk(tmp_path, name, kwargs):
    model = _model(name, **kwargs)
    path = tmp_path / f"{name}.onnx"
    meta = export_onnx(model, path, frame_size=(32, 32), num_frames=6, metadata={"model": name, "classes": CLASSES})
    clips = [torch.randn(1, 3, 6, 32, 32) for _ in range(2)]
    assert verify(path, model, clips) <= TOLERANCE
    session = session_for(path)
    assert read_metadata(session) == json.loads(json.dumps(meta)) and meta["classes"] == CLASSES
    if meta["kind"] == "stream":
        assert [i.name for i in session.get_inputs()] == ["frames", *(f"state.{s['name']}" for s in meta["state"])]
        assert [o.name for o in session.get_outputs()] == ["logits", *(f"next_state.{s['name']}" for s in meta["state"])]
        runtime = OnnxModel(session, meta)  # the second clip after the first: the state carries on
        first, state = runtime.stream(clips[0])
        second, _ = runtime.stream(clips[1], state)
        with torch.no_grad():
            torch.testing.assert_close(torch.cat([first, second], 1), model.stream(torch.cat(clips, 2))[0], rtol=0,
                                       atol=TOLERANCE)
    else:
        assert meta["kind"] == "clip"
        batch = torch.randn(3, 3, 6, 32, 32)  # a batch other than the exported one: the batch is dynamic
        with torch.no_grad():
            np.testing.assert_allclose(session.run(None, {"clips": batch.numpy()})[0], model(batch).numpy(), atol=TOLERANCE)


def test_verify_fails_when_the_weights_differ(tmp_path):
    model = _model("rcn_gru_s")
    export_onnx(model, tmp_path / "m.onnx", frame_size=(32, 32), num_frames=4, metadata={"model": "rcn_gru_s"})
    other = get_model("rcn_gru_s", num_classes=len(CLASSES)).eval()
    assert verify(tmp_path / "m.onnx", other, [torch.randn(1, 3, 4, 32, 32)]) > 1e-2


def test_the_tool_writes_a_checked_file_and_never_replaces_one_unasked(tmp_path, sample_videos, capsys):
    export = load_tool("export")
    ckpt = write_checkpoint(tmp_path / "rcn.pt", "rcn_gru_s", favour=None)
    out = tmp_path / "out" / "rcn.onnx"
    video = sample_videos["bikes.mp4"]
    assert export.run_tool(export.main, ["--checkpoint", str(ckpt), "--out", str(out), "--video", str(video)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "on random input" in printed and f"on {video}" in printed
    meta = read_metadata(session_for(out))
    assert meta["model"] == "rcn_gru_s" and meta["classes"] == CLASSES and meta["preprocess"]["size"] == 32
    assert [p.name for p in out.parent.iterdir()] == ["rcn.onnx"]  # no temporary file left behind
    before = out.read_bytes()
    assert export.run_tool(export.main, ["--checkpoint", str(ckpt), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out}: already exists") and err.count("\n") == 1 and out.read_bytes() == before
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert export.run_tool(export.main, ["--checkpoint", str(bad), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: ") and err.count("\n") == 1 and not (tmp_path / "x.onnx").exists()


def test_the_tool_never_writes_over_its_own_inputs_nor_a_file_that_is_not_onnx(tmp_path, capsys):
    export = load_tool("export")
    ckpt = write_checkpoint(tmp_path / "rcn.pt", "rcn_gru_s", favour=None)
    video = tmp_path / "clip.onnx"  # an input that happens to end in .onnx
    video.write_bytes(b"a video")
    kept = {p: p.read_bytes() for p in (ckpt, video)}
    link = tmp_path / "link.onnx"
    link.symlink_to(ckpt.name)
    for out, words in ((ckpt, "an ONNX file name ends in .onnx"), (video, "is an input of this run"),
                       (link, "is an input of this run"), (tmp_path, "is a folder, not an ONNX file name"),
                       (tmp_path / "model.pt", "an ONNX file name ends in .onnx")):
        args = ["--checkpoint", str(ckpt if out != link else link), "--out", str(out), "--overwrite"]
        assert export.run_tool(export.main, [*args, "--video", str(video)] if out == video else args) == 2, out
        err = capsys.readouterr().err
        assert err.startswith(f"error: {out}: ") and words in err and err.count("\n") == 1, err
    assert {p: p.read_bytes() for p in kept} == kept and not (tmp_path / "model.pt").exists()


_INFER_ALONE = """import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("infer", sys.argv[1])
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)
code = tool.main(sys.argv[2:])
print(json.dumps({"code": code, "model code imported": any(m.startswith("vidrcnn.models") for m in sys.modules)}),
      file=sys.stderr)
"""


@pytest.mark.parametrize("name", ["rcn_gru_s", "frame_avg_s"])
def test_infer_on_onnx_agrees_with_the_checkpoint_without_the_model_code(tmp_path, sample_videos, capsys, name):
    ckpt = write_checkpoint(tmp_path / f"{name}.pt", name, favour=None)
    onnx = tmp_path / f"{name}.onnx"
    export = load_tool("export")
    assert export.run_tool(export.main, ["--checkpoint", str(ckpt), "--out", str(onnx)]) == 0
    capsys.readouterr()
    video = str(sample_videos["bikes.mp4"])
    infer = load_tool("infer")
    assert infer.run_tool(infer.main, [video, "--checkpoint", str(ckpt), "--json", "--topk", "3"]) == 0
    expected = json.loads(capsys.readouterr().out)
    run = subprocess.run([sys.executable, "-c", _INFER_ALONE, str(TOOLS / "infer.py"), video, "--onnx", str(onnx),
                          "--json", "--topk", "3"], capture_output=True, text=True, timeout=300, check=False)
    assert json.loads(run.stderr.strip().splitlines()[-1]) == {"code": 0, "model code imported": False}, run.stderr
    got = json.loads(run.stdout)
    assert [t["label"] for t in got["topk"]] == [t["label"] for t in expected["topk"]]
    assert [t["score"] for t in got["topk"]] == pytest.approx([t["score"] for t in expected["topk"]], abs=1e-5)
    assert [s["label"] for s in got["segments"]] == [s["label"] for s in expected["segments"]]


@pytest.mark.parametrize(("metadata", "words"), [
    (None, "carries no vidrcnn metadata (not written by tools/export.py)"),
    ("{not json", "its vidrcnn metadata is not JSON (Expecting property name enclosed in double quotes at character 1)"),
    ('["a list"]', "its vidrcnn metadata is a JSON list, not an object"),
    ('{"model": "rcn_gru_s", "kind": "stream", "preprocess": {"size": 32}}',
     "its vidrcnn metadata lacks classes, preprocess.num_frames (written by another version of tools/export.py"),
])
def test_an_onnx_file_without_usable_metadata_says_what_it_lacks(tmp_path, metadata, words):
    import onnx
    from onnx import TensorProto, helper

    from vidrcnn.errors import CheckpointError
    from vidrcnn.inference.onnx_runtime import load_onnx_predictor

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata is not None:
        helper.set_model_props(model, {"vidrcnn": metadata})
    path = tmp_path / "foreign.onnx"
    onnx.save(model, path)
    with pytest.raises(CheckpointError) as error:
        load_onnx_predictor(path)
    assert str(error.value) == f"{path}: the ONNX model {words}" if metadata is None else \
        str(error.value).startswith(f"{path}: {words}"), str(error.value)


def _pbtxt(text: str):
    """A protobuf text-format message as nested dicts and lists (enough for a Triton config.pbtxt)."""
    import re

    tokens = re.findall(r'"[^"]*"|[{}\[\]:,]|[^\s{}\[\]:,]+', text)
    pos = 0

    def value():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "{":
            return message("}")
        if tok == "[":
            items = []
            while tokens[pos] != "]":
                items.append(value())
                pos += tokens[pos] == ","
            pos += 1
            return items
        return tok[1:-1] if tok.startswith('"') else int(tok) if re.fullmatch(r"-?\d+", tok) else tok

    def message(end):
        nonlocal pos
        fields = {}
        while pos < len(tokens) and tokens[pos] != end:
            key = tokens[pos]
            pos += 1 + (tokens[pos + 1] == ":")
            fields[key] = value()
        pos += 1
        return fields

    return message(None)


def test_the_triton_repository_declares_what_the_onnx_step_has_and_start_resets_the_state(tmp_path, capsys):
    from vidrcnn.inference.triton import onnx_io

    export = load_tool("export")
    ckpt = write_checkpoint(tmp_path / "rcn.pt", "rcn_gru_s", favour=None, num_frames=4, stride=1)
    repo = tmp_path / "repo"
    assert export.run_tool(export.main, ["--checkpoint", str(ckpt), "--triton", str(repo)]) == 0
    assert "wrote the Triton model repository" in capsys.readouterr().out
    folder = repo / "rcn_gru_s"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == ["1", "1/model.onnx", "config.pbtxt"]
    config, io = _pbtxt((folder / "config.pbtxt").read_text()), onnx_io(folder / "1" / "model.onnx")
    types = {"float32": "TYPE_FP32", "int64": "TYPE_INT64"}
    assert config["name"] == "rcn_gru_s" and config["backend"] == "onnxruntime" and config["max_batch_size"] == 0
    for section in ("input", "output"):
        for tensor in config[section]:
            assert (types[io[tensor["name"]][0]], io[tensor["name"]][1]) == (tensor["data_type"], tensor["dims"])
    batcher = config["sequence_batching"]
    (start,) = batcher["control_input"]
    assert start["name"] == "START" and start["control"][0]["kind"] == "CONTROL_SEQUENCE_START"
    assert io["START"] == ("float32", [1])
    states = batcher["state"]
    assert {s["input_name"] for s in states} | {"frames", "START"} == {n for n in io if not n.startswith(("logits", "next"))}
    for s in states:
        assert s["output_name"] == "next_" + s["input_name"] and s["output_name"] in io
        assert (s["data_type"], s["dims"]) == (types[io[s["input_name"]][0]], io[s["input_name"]][1])
        assert s["initial_state"]["zero_data"] == "true" and s["initial_state"]["dims"] == s["dims"]
    # START = 1 on the first frame: whatever state the server passes in (here garbage), the step starts from zeros.
    session = session_for(folder / "1" / "model.onnx")
    rng = np.random.default_rng(0)
    frame = rng.standard_normal((1, 3, 1, 32, 32)).astype(np.float32)
    garbage = {s["input_name"]: (rng.standard_normal(io[s["input_name"]][1]) * 100).astype(io[s["input_name"]][0])
               for s in states}
    zeros = {k: np.zeros_like(v) for k, v in garbage.items()}
    at_start = session.run(["logits"], {"frames": frame, "START": np.ones(1, np.float32), **garbage})[0]
    from_zeros = session.run(["logits"], {"frames": frame, "START": np.zeros(1, np.float32), **zeros})[0]
    carried = session.run(["logits"], {"frames": frame, "START": np.zeros(1, np.float32), **garbage})[0]
    np.testing.assert_allclose(at_start, from_zeros, atol=1e-6)
    assert not np.allclose(carried, from_zeros, atol=1e-3)  # without START the state is used
    # An existing model folder is never replaced unasked.
    assert export.run_tool(export.main, ["--checkpoint", str(ckpt), "--triton", str(repo)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {folder}: exists; add --overwrite")
