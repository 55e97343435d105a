"""The RCN diagnostics: each quantity measures what it says on models where the answer is known."""

from __future__ import annotations

import pytest
import torch

from vidrcnn.experiments import diagnostics
from vidrcnn.models import get_model

K, T = 5, 6


pytestmark = pytest.mark.usefixtures("one_thread")


def build(name: str, **kw):
    torch.manual_seed(0)
    return get_model(name, num_classes=K, **kw)


def clip(b: int = 2) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(b, 3, T, 16, 16)


def test_memory_is_zero_for_a_cell_that_keeps_nothing_and_positive_for_one_that_does():
    forgetful = build("rcn_gru_s", preact_norm=None)
    with torch.no_grad():
        for layer in forgetful.layers:  # z = 1 and no state convolution: h_t = tanh(W x_t), no memory at all
            layer.cell.input_conv.bias[: layer.cell.hidden_channels] = 50.0
            layer.cell.state_conv_zr.weight.zero_()
            layer.cell.state_conv_n.weight.zero_()
    m = diagnostics.memory(forgetful.eval(), clip())
    assert len(m) == T and m[-1] == pytest.approx(1.0)
    assert max(m[:-1]) < 1e-6
    m = diagnostics.memory(build("rcn_gru_s", preact_norm=None, chrono=16).eval(), clip())
    assert min(m[:-1]) > 1e-3  # a long memory at the start: every frame still reaches the end


def test_grad_per_step_shows_a_last_step_readout_training_the_last_frames_most():
    model = build("rcn_gru_s", preact_norm=None)  # the cell as it was: z ~ 0.5 at init
    grads = diagnostics.grad_per_step(model, clip(), torch.tensor([0, 1]))
    assert set(grads) == {"stem", "layer0", "layer1"}
    assert all(len(g) == T for g in grads.values())
    assert grads["stem"][0] < grads["stem"][-1]  # gradient dies out backwards in time (z ~ 0.5 at init)
    assert all(g is None for g in (p.grad for p in model.parameters()))  # leaves no gradients behind


def test_gate_saturation_counts_per_layer_and_saturates_with_large_preactivations():
    model = build("rcn_lstm_s", preact_norm=None, activation="tanh").eval()  # the cell with its tanh gates
    sat = diagnostics.gate_saturation(model, clip())
    assert set(sat) == {"layer0", "layer1"} and set(sat["layer0"]) == {"sigmoid", "tanh"}
    assert all(0.0 <= v < 0.5 for kinds in sat.values() for v in kinds.values())
    with torch.no_grad():
        model.layers[0].cell.input_conv.weight.mul_(1000)
    assert diagnostics.gate_saturation(model, clip())["layer0"]["sigmoid"] > 0.5


def test_activation_rms_names_every_stage():
    rms = diagnostics.activation_rms(build("rcn_rnn_s"), clip())
    assert list(rms) == ["stem", "layer0", "layer1"] and all(v > 0 for v in rms.values())


def test_per_step_logits_are_diagnosed_with_the_per_step_loss():
    grads = diagnostics.grad_per_step(build("rcn_gru_s", head="steps"), clip(), torch.tensor([0, 1]))
    assert all(g > 0 for g in grads["layer1"])  # a loss on every step reaches every step of the top layer
