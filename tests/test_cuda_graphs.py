"""CUDA graphs (vidrcnn.engine.cuda_graphs): the logic of graph replay, run on the CPU with a capture that keeps
capture_cuda_graph's contract (the output captured once, refreshed in place by every replay)."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from vidrcnn.engine.cuda_graphs import GraphedForward
from vidrcnn.engine.evaluate import evaluate


class CpuReplay:
    """capture_cuda_graph's contract on the CPU: ``fn`` runs once at capture; each replay runs it again and writes its
    result into the tensor the capture returned."""

    def __init__(self):
        self.shapes: list[tuple] = []

    def __call__(self, fn, device):
        out = fn()
        self.shapes.append(tuple(out.shape))

        class Graph:
            def replay(self):
                out.copy_(fn())

        return Graph(), out


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3, 4)

    def forward(self, x):  # (B, C, T, H, W) -> (B, 4)
        return self.fc(x.mean((2, 3, 4)))


def _batches(sizes):
    torch.manual_seed(1)
    return [{"video": torch.randn(b, 2, 3, 2, 4, 4), "label": torch.randint(0, 4, (b,))} for b in sizes]


def test_graph_replay_scores_a_test_set_as_the_eager_model_does():
    batches = _batches([3, 3, 3, 1])  # full batches, then a ragged last one: two views-per-forward chunk shapes
    eager = evaluate(Linear(), batches, 4, views_per_forward=4)
    capture = CpuReplay()
    replayed = evaluate(GraphedForward(Linear(), capture=capture), batches, 4, views_per_forward=4)
    assert replayed["videos"] == eager["videos"] and replayed["top1"] == eager["top1"]
    assert replayed["nll"] == pytest.approx(eager["nll"])
    assert sorted(capture.shapes) == [(2, 4), (4, 4)]  # 6 views = 4 + 2; the last batch's 2 views reuse (2, 4)


@torch.no_grad()
def test_each_call_gets_its_own_output_and_a_shape_past_the_limit_runs_eagerly():
    model = Linear()
    capture = CpuReplay()
    graphed = GraphedForward(model, max_shapes=1, capture=capture)
    x, y = torch.randn(2, 3, 1, 2, 2), torch.randn(2, 3, 1, 2, 2)
    first, second = graphed(x), graphed(y)
    torch.testing.assert_close(first, model(x))  # not overwritten by the second replay
    torch.testing.assert_close(second, model(y))
    other = torch.randn(5, 3, 1, 2, 2)
    torch.testing.assert_close(graphed(other), model(other))
    assert capture.shapes == [(2, 4)]


def test_a_failed_capture_leaves_the_model_eager_with_a_warning(caplog):
    def refuses(fn, device):
        raise RuntimeError("operation not permitted when stream is capturing")

    graphed = GraphedForward(Linear(), capture=refuses)
    x = torch.randn(2, 3, 1, 2, 2)
    with torch.no_grad(), caplog.at_level(logging.WARNING):
        torch.testing.assert_close(graphed(x), graphed.model(x))
    assert graphed.failed and "CUDA graph capture failed" in caplog.text


def test_a_replay_with_gradients_is_refused():
    with pytest.raises(RuntimeError, match="without gradients"):
        GraphedForward(Linear(), capture=CpuReplay())(torch.randn(1, 3, 1, 2, 2))
