"""CUDA graphs (vidrcnn.engine.cuda_graphs, the test forward pass; vidrcnn.engine.train_step, the training step): the
logic of graph replay, run on the CPU with captures that keep capture_cuda_graph's contract (the output captured
once, refreshed in place by every replay)."""

from __future__ import annotations

import contextlib
import copy
import logging

import pytest
import torch
from torch import nn

from vidrcnn.engine.config import OptimConfig, load_config
from vidrcnn.engine.cuda_graphs import GraphedForward
from vidrcnn.engine.distributed import DistInfo
from vidrcnn.engine.evaluate import evaluate
from vidrcnn.engine.state import TrainState
from vidrcnn.engine.train import build_optimizer, check_cuda_graph
from vidrcnn.engine.train_step import GraphedStep, forward_loss, set_lr, update
from vidrcnn.errors import ConfigError


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


class CpuStepCapture:
    """capture_cuda_graph's contract for a training step, on the CPU: a capture records the step without running it
    (here: runs it and undoes its update), and each replay runs it, writing its logits and loss in place."""

    def __init__(self, state):
        self.state, self.captures = state, 0

    def __call__(self, fn, device):
        model, optimizer = self.state.model, self.state.optimizer
        saved = copy.deepcopy((model.state_dict(), optimizer.state_dict()))
        out = tuple(t.detach() for t in fn())
        model.load_state_dict(saved[0])
        optimizer.load_state_dict(saved[1])
        self.captures += 1

        class Graph:
            def replay(self):
                for static, new in zip(out, fn(), strict=True):
                    static.copy_(new.detach())

        return Graph(), out


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.bn, self.fc = nn.BatchNorm1d(3), nn.Linear(3, 4)  # (a bias before a BatchNorm would get no gradient)

    def forward(self, x):  # (B, C, T, H, W) -> (B, 4)
        return self.fc(self.bn(x.mean((2, 3, 4))))


def _train_state(**kw) -> TrainState:
    model = Small()
    return TrainState(model=model, optimizer=build_optimizer(model, OptimConfig(), 1e-2), schedule=None,
                      device=torch.device("cpu"), autocast=contextlib.nullcontext(),
                      scaler=torch.amp.GradScaler("cpu", enabled=False), clip_grad=0.5, **kw)


def test_a_graphed_training_step_trains_as_the_eager_step_does():
    torch.manual_seed(2)
    sizes = [4, 4, 4, 4, 3, 4, 4]  # warm-up, warm-up, capture and replay, replay, another shape (eager), replays
    batches = [(torch.randn(b, 3, 2, 4, 4), torch.randint(0, 4, (b,))) for b in sizes]
    eager, graphed = _train_state(), _train_state()
    for group in graphed.optimizer.param_groups:  # as build_optimizer(capturable=True) makes it: a tensor, set in place
        group["lr"] = torch.tensor(group["lr"])
    capture = CpuStepCapture(graphed)
    step = GraphedStep(graphed, warmup=2, capture=capture)
    for i, (x, y) in enumerate(batches):
        lr = 1e-2 * (i + 1)  # a schedule: the captured step must read each step's rate
        set_lr(eager.optimizer, lr), set_lr(graphed.optimizer, lr)
        logits, loss = forward_loss(eager, x, y)
        update(eager, loss)
        g_logits, g_loss = step(x, y)
        torch.testing.assert_close(g_loss, loss.detach())
        torch.testing.assert_close(g_logits, logits.detach())
    assert capture.captures == 1 and step.eager_steps == 3
    assert all(isinstance(g["lr"], torch.Tensor) and g["lr"].item() == pytest.approx(0.07)
               for g in graphed.optimizer.param_groups)
    for (name, a), (_, b) in zip(eager.model.state_dict().items(), graphed.model.state_dict().items(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize(("device", "world", "optim", "fp16", "why"), [
    ("cpu", 1, "adamw", False, "needs a CUDA device"),
    ("cuda", 2, "adamw", False, "not under torchrun"),
    ("cuda", 1, "sgd", False, "needs optim.name=adamw"),
    ("cuda", 1, "adamw", True, "fp16's grad scaler"),
])
def test_a_training_step_that_cannot_be_captured_is_refused_with_the_reason(device, world, optim, fp16, why):
    cfg = load_config(None, [f"optim.name={optim}", "train.cuda_graph=true"])
    info = DistInfo(world_size=world, device=torch.device(device))
    with pytest.raises(ConfigError, match=f"train.cuda_graph: the training step cannot be captured .*{why}"):
        check_cuda_graph(cfg, info, fp16=fp16)
    check_cuda_graph(load_config(None, ["train.cuda_graph=true"]), DistInfo(device=torch.device("cuda")), fp16=False)
