"""BatchNorm folded into the convolution before it, for inference.

In eval mode a BatchNorm is an affine map per channel, ``y = s * (x - mean) + beta`` with ``s = gamma / sqrt(var +
eps)``, so ``BN(conv(x))`` is one convolution with weights ``s * W`` and bias ``s * (b - mean) + beta``: one kernel
launch fewer per pair, and on a GPU, where a recurrent step is launch-bound, one fewer per streamed frame for every
recurrent layer whose input pre-activations are normalised (the default). The folded model computes the same
function up to float rounding, in eval mode only: it has no BatchNorm left to train.

:func:`fold_batch_norms` folds every ``Conv -> BatchNorm`` pair it can see: adjacent in an ``nn.Sequential``, and
inside any module with a ``fold_batch_norm()`` method (the recurrent cells' input convolution and norm, the causal
stem), which knows its own pairs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CONV_FOR_NORM = {nn.BatchNorm1d: nn.Conv1d, nn.BatchNorm2d: nn.Conv2d, nn.BatchNorm3d: nn.Conv3d}


def can_fold(conv: nn.Module, norm: nn.Module) -> bool:
    """Whether ``norm`` (in eval mode, with running statistics) is a BatchNorm of ``conv``'s output channels, of
    the same dimensionality: then ``fuse_conv_bn_eval(conv, norm)`` is one convolution equal to both."""
    return (isinstance(norm, _BatchNorm) and type(conv) is _CONV_FOR_NORM.get(type(norm))
            and not norm.training and not conv.training and norm.running_mean is not None
            and conv.out_channels == norm.num_features)


def norm_scale(norm: _BatchNorm) -> torch.Tensor:
    """``s`` with ``norm(x) = s * x + t`` per channel, in eval mode."""
    s = torch.rsqrt(norm.running_var + norm.eps)
    return (s if norm.weight is None else s * norm.weight).detach()


def fold_batch_norms(module: nn.Module) -> int:
    """Fold, in place, every BatchNorm of ``module`` that follows a convolution (see the module docstring) into that
    convolution, the BatchNorm becoming an ``nn.Identity``; returns how many. ``module`` must be in eval mode: a
    folded model is for inference only."""
    if module.training:
        raise ValueError("fold_batch_norms needs a model in eval mode (call .eval() first): folding bakes in the "
                         "running statistics, and a folded model cannot train its BatchNorms")
    folded = 0
    for m in list(module.modules()):
        if isinstance(m, nn.Sequential):
            for i in range(len(m) - 1):
                if can_fold(m[i], m[i + 1]):
                    m[i], m[i + 1] = fuse_conv_bn_eval(m[i], m[i + 1]), nn.Identity()
                    folded += 1
        elif hasattr(m, "fold_batch_norm"):
            folded += int(m.fold_batch_norm())
    return folded
