"""Gradient checkpointing over time (``model.kwargs.checkpoint_every``): the same loss, gradients and BatchNorm
statistics as the plain backward, and less memory held for backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vidrcnn.layers import ConvRecurrent
from vidrcnn.models import get_model
from vidrcnn.profiling import held_for_backward, tensor_peak_memory

pytestmark = pytest.mark.usefixtures("one_thread")


def _step(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), torch.arange(x.shape[0]) % 5)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name, kwargs", [("rcn_gru_s", {}), ("rcn_lstm_s", {"head": "mean"}),
                                          ("rcn_mingru_s", {"input_frames": 2}), ("rcn_rnn_s", {"stem_frames": 1})])
def test_checkpointed_training_step_equals_the_plain_one(name, kwargs):
    torch.manual_seed(0)
    plain = get_model(name, num_classes=5, **kwargs).train()
    ckpt = get_model(name, num_classes=5, checkpoint_every=3, **kwargs).train()  # 7 frames: chunks 3, 3, 1
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 7, 32, 32)
    loss, grads = _step(plain, x)
    loss_c, grads_c = _step(ckpt, x)
    assert torch.allclose(loss, loss_c, atol=1e-6)
    assert grads.keys() == grads_c.keys() and len(grads) == len(list(plain.parameters()))
    for n in grads:
        assert torch.allclose(grads[n], grads_c[n], rtol=1e-4, atol=1e-6), n
    # The recomputation in backward does not update the BatchNorm statistics a second time.
    for (n, b), (_, b_c) in zip(plain.named_buffers(), ckpt.named_buffers()):
        assert torch.equal(b, b_c), n
    # Eval, no_grad and stream (which the export relies on) run as without checkpointing.
    plain.eval(), ckpt.eval()
    with torch.no_grad():
        assert torch.allclose(plain(x), ckpt(x), atol=1e-6)
        assert torch.allclose(plain.stream(x)[0], ckpt.stream(x)[0], atol=1e-6)


def test_checkpointing_needs_a_positive_chunk_and_the_batched_input_conv():
    with pytest.raises(ValueError, match="checkpoint_every"):
        ConvRecurrent(3, 4, checkpoint_every=0)
    with pytest.raises(ValueError, match="batch_input_conv"):
        ConvRecurrent(3, 4, checkpoint_every=2, batch_input_conv=False)


def test_checkpointing_lowers_the_memory_of_a_training_step():
    # Measured by what does not depend on the machine's allocator (the resident set, which the benchmark
    # benchmarks/checkpoint_memory.py also reports, varies with the heap's history from one machine to the next):
    # the activations autograd holds for backward, and the peak of live tensor bytes over forward and backward.
    x, y = torch.randn(2, 3, 16, 64, 64), torch.zeros(2, dtype=torch.long)
    measured = {}
    for every in (None, 8):
        torch.manual_seed(0)
        model = get_model("rcn_gru_s", num_classes=5, checkpoint_every=every).train()
        with tensor_peak_memory() as peak:
            with held_for_backward() as held:
                loss = F.cross_entropy(model(x), y)
            loss.backward()
        measured[every] = held["held_for_backward_mb"], peak["tensor_peak_mb"]
    (held_plain, peak_plain), (held_ckpt, peak_ckpt) = measured[None], measured[8]
    assert held_ckpt < held_plain / 3, measured  # only each chunk's end state and the layers' inputs are kept
    assert peak_ckpt < 0.8 * peak_plain, measured
