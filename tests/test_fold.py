"""BatchNorm folded into the convolution before it (vidrcnn.layers.fold): the same outputs and stream, fewer launches."""

import copy

import pytest
import torch
from torch import nn

from vidrcnn.layers import fold_batch_norms
from vidrcnn.models import get_model
from vidrcnn.profiling.work_span import work_span


def with_random_statistics(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with every BatchNorm's running statistics and affine parameters drawn at random, so
    that a fold which drops or misplaces any of them changes the output."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.randn(m.num_features, generator=g))
                    m.bias.copy_(torch.randn(m.num_features, generator=g))
    return model.eval()


def batch_norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


MODELS = [
    ("rcn_gru_s", {}),  # causal 3-frame stem, per-frame stem convolutions, input BatchNorm in both layers
    ("rcn_lstm_s", {}),
    ("rcn_lstm_s", {"coupled": True}),  # three gates: the fold sizes the norm by the cell's own gate count
    ("rcn_mingru_s", {}),
    ("rcn_rnn_s", {"input_frames": 2}),  # the norm acts on input_conv + input_conv_past
    ("c3d_s", {}),
    ("cnn_lstm_s", {}),
]


@pytest.mark.parametrize(("name", "kwargs"), MODELS, ids=[m for m, _ in MODELS])
def test_folded_model_computes_the_same_function(name, kwargs):
    torch.manual_seed(0)
    model = with_random_statistics(get_model(name, num_classes=5, **kwargs))
    folded = copy.deepcopy(model)
    n = fold_batch_norms(folded)
    assert n > 0 and batch_norms(folded) < batch_norms(model)
    x = torch.randn(2, 3, 6, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)


def test_every_batch_norm_after_a_convolution_is_folded():
    model = with_random_statistics(get_model("rcn_gru_s", num_classes=5))
    fold_batch_norms(model)
    assert batch_norms(model) == 0  # stem (causal and per-frame) and both layers' input norms


def test_folded_recurrent_model_streams_exactly_and_launches_fewer_kernels_per_frame():
    torch.manual_seed(0)
    model = with_random_statistics(get_model("rcn_gru_s", num_classes=5))
    folded = copy.deepcopy(model)
    fold_batch_norms(folded)
    x = torch.randn(1, 3, 5, 32, 32)
    with torch.no_grad():
        whole = model(x)
        state, logits = None, []
        for t in range(x.shape[2]):
            step, state = folded.stream(x[:, :, t:t + 1], state)
            logits.append(step[:, -1])
    torch.testing.assert_close(logits[-1], whole, rtol=1e-4, atol=1e-4)
    # one streamed frame: each BatchNorm (the stem's two, the two layers' input norms) is one launch fewer
    assert work_span(model, x[:, :, :1]).launches - work_span(folded, x[:, :, :1]).launches == batch_norms(model)


def test_fold_refuses_a_model_in_training_mode():
    model = get_model("c3d_s", num_classes=5)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(model)


def test_a_batch_norm_not_after_a_convolution_is_left_alone():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Conv2d(4, 4, 1)).eval()
    assert fold_batch_norms(model) == 0 and batch_norms(model) == 1


def test_a_folded_streamed_frame_launches_no_norm_and_no_copy():
    """One frame with carried state through the folded ``rcn_gru_s``: only the operators of the equations remain
    (no BatchNorm, no stack of a single step's output)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    launched = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            launched.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    model = with_random_statistics(get_model("rcn_gru_s", num_classes=5))
    fold_batch_norms(model)
    with torch.no_grad():
        _, state = model.stream(torch.randn(1, 3, 3, 32, 32))
        with Record():
            model.stream(torch.randn(1, 3, 1, 32, 32), state)
    assert "convolution" in launched and "lerp" in launched
    assert not {"native_batch_norm", "_native_batch_norm_legit_no_training", "stack"} & set(launched)
