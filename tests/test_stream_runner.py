"""Stepping a causal model one frame at a time through fixed buffers (the path a CUDA graph replays) gives what
``model.stream`` gives; the graph itself is refused off CUDA with the reason (its replay runs on a lent GPU:
benchmarks/gpu_suite.py)."""

from __future__ import annotations

import pytest
import torch

from vidrcnn.inference.steps import stream_steps
from vidrcnn.inference.stream_runner import ChunkStepper, StreamRunner, default_step_mode, make_stepper
from vidrcnn.models import get_model

MODELS = [("rcn_gru_s", {}), ("rcn_lstm_s", {}), ("rcn_mingru_s", {}), ("rcn_rnn_s", {}), ("rcn_rcl_s", {}),
          ("rcn_gru_s", {"head": "mean"}), ("cnn_lstm_s", {})]


def _model(name: str, kwargs: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    model = get_model(name, num_classes=5, **kwargs).eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so that the state matters
        model(torch.randn(2, 3, 6, 32, 32))
    return model.eval()


@pytest.mark.parametrize(("name", "kwargs"), MODELS, ids=lambda v: v if isinstance(v, str) else str(v or ""))
def test_frame_by_frame_in_fixed_buffers_equals_the_stream(name, kwargs):
    model = _model(name, kwargs)
    clip = torch.randn(3, 3, 7, 32, 32)  # three streams stepped together
    with torch.no_grad():
        whole, _ = model.stream(clip)  # (3, 7, K)
        chunked = ChunkStepper(model)
        by_chunk = torch.cat([chunked(clip[:, :, :3]), chunked(clip[:, :, 3:])], 1)
        runner = StreamRunner(model, graph=False)
        by_frame = torch.cat([runner(clip[:, :, :2]), runner(clip[:, :, 2:])], 1)
        alone = StreamRunner(model, graph=False)(clip[1:2])  # one of the streams on its own
    assert torch.allclose(by_chunk, whole, atol=1e-5) and torch.allclose(by_frame, whole, atol=1e-5)
    assert torch.allclose(alone, whole[1:2], atol=1e-5)
    runner.reset()  # the first frame again, from the state before any frame
    assert torch.allclose(runner(clip[:, :, :1]), whole[:, :1], atol=1e-5)


def test_stream_steps_give_the_same_steps_in_every_mode_that_runs_here():
    model = _model("rcn_gru_s", {})
    video = torch.randint(0, 256, (11, 32, 32, 3), dtype=torch.uint8)
    chunks = [video[:4], video[4:9], video[9:]]

    def transform(frames):
        return frames.permute(3, 0, 1, 2).float() / 255.0

    runs = {mode: list(stream_steps(model, chunks, transform=transform, stride=2, step_mode=mode))
            for mode in ("chunk", "frame")}
    assert [s.tolist() for s, _ in runs["chunk"]] == [s.tolist() for s, _ in runs["frame"]] == [[0, 2], [4, 6, 8], [10]]
    for (_, a), (_, b) in zip(runs["chunk"], runs["frame"], strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_the_graph_mode_is_refused_off_cuda_and_the_default_follows_the_device():
    model = _model("rcn_gru_s", {})
    with pytest.raises(ValueError, match="a CUDA graph needs the model on a CUDA device, not cpu"):
        make_stepper(model, "graph", "cpu")
    with pytest.raises(ValueError, match="unknown step mode 'fast'; choose one of chunk, frame, graph"):
        make_stepper(model, "fast", "cpu")
    assert isinstance(make_stepper(model, None, "cpu"), ChunkStepper)
    assert default_step_mode("cpu") == "chunk" and default_step_mode("cuda:0") == "graph"
