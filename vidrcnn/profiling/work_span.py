"""Work and span of a forward pass, counted from the model itself, operator by operator.

The **work** is what the pass does in all: its FLOPs (convolutions and matrix products, as
``torch.utils.flop_counter`` counts them) and its kernel launches (every operator that computes; a view or an
allocation computes nothing). The **span** is what must run one after another however wide the machine, along the
longest chain of operators each of which needs the one before: the launches on that chain, and its FLOPs, each
operator counting the FLOPs of *one* of its output elements (the elements of one output do not depend on each other,
so a wide enough machine computes them side by side; a convolution's element is its ``C_in x k x k`` products).
Work / span is the available parallelism, a property of the model and the input shape, not of the machine.

How: a ``TorchDispatchMode`` sees every aten operator the pass runs, with its input and output tensors. An output's
depth is its operator's cost plus the deepest of its inputs (parameters and the clip start at 0; an operator that
writes into an input passes its depth to that input too). For a recurrent layer the chain runs through every time
step, so its span grows with T; a 3-D CNN's grows with its depth, not with T; the minGRU's log-space scan with log T.

    >>> ws = work_span(model, torch.randn(1, 3, 16, 32, 32))
    >>> ws.work_flops, ws.span_flops, ws.launches, ws.span_launches
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import flop_registry
from torch.utils.weak import WeakTensorKeyDictionary

from vidrcnn.outputs import save_png


@dataclass(frozen=True)
class WorkSpan:
    """One pass's work and span, in FLOPs and in kernel launches."""

    work_flops: int
    span_flops: float  # one output element's FLOPs per operator, summed along the chain
    launches: int
    span_launches: int

    @property
    def parallelism(self) -> float:
        """FLOPs that could run side by side on average: work / span."""
        return self.work_flops / self.span_flops if self.span_flops else float("inf")

    @property
    def launch_parallelism(self) -> float:
        return self.launches / self.span_launches if self.span_launches else float("inf")

    def as_dict(self) -> dict:
        return {**asdict(self), "parallelism": self.parallelism, "launch_parallelism": self.launch_parallelism}


# operators that only allocate memory: no kernel (a batch norm in eval mode allocates its unused saved statistics)
_ALLOCATIONS = {torch.ops.aten.empty, torch.ops.aten.empty_like, torch.ops.aten.empty_strided,
                torch.ops.aten.new_empty, torch.ops.aten.new_empty_strided}


def _launches_nothing(func) -> bool:
    """An operator that returns a view of an input, or only allocates, computes nothing (no kernel)."""
    if func.overloadpacket in _ALLOCATIONS:
        return True
    returns = func._schema.returns
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)


def _written(func, args: tuple, kwargs: dict) -> list[Tensor]:
    """The input tensors an in-place or ``out=`` operator writes into."""
    out = []
    for i, arg in enumerate(func._schema.arguments):
        if arg.alias_info is not None and arg.alias_info.is_write:
            value = args[i] if i < len(args) else kwargs.get(arg.name)
            out += [t for t in tree_leaves(value) if isinstance(t, Tensor)]
    return out


class _Counter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.flops: WeakTensorKeyDictionary = WeakTensorKeyDictionary()  # depth in FLOPs
        self.steps: WeakTensorKeyDictionary = WeakTensorKeyDictionary()  # depth in launches
        self.work_flops = self.launches = self.span_flops = self.span_launches = 0

    def _depth(self, table, t: Tensor) -> int:
        depth = table.get(t, 0)
        base = t._base
        return max(depth, table.get(base, 0)) if base is not None else depth

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, Tensor)]
        flops_in = max((self._depth(self.flops, t) for t in inputs), default=0)
        steps_in = max((self._depth(self.steps, t) for t in inputs), default=0)
        if _launches_nothing(func):
            cost_flops = cost_steps = 0
        else:
            formula = flop_registry.get(func.overloadpacket)
            cost_flops = int(formula(*args, **kwargs, out_val=out)) if formula is not None else 0
            cost_steps = 1
            self.work_flops += cost_flops
            self.launches += 1
            elements = max((t.numel() for t in tree_leaves(out) if isinstance(t, Tensor)), default=1)
            cost_flops = cost_flops / max(elements, 1)  # on the chain: one output element's share
        flops, steps = flops_in + cost_flops, steps_in + cost_steps
        for t in [*(t for t in tree_leaves(out) if isinstance(t, Tensor)), *_written(func, args, kwargs)]:
            self.flops[t], self.steps[t] = flops, steps
            if t._base is not None and t._base is not t:  # a write into a view is a write into its base
                self.flops[t._base] = max(self.flops.get(t._base, 0), flops)
                self.steps[t._base] = max(self.steps.get(t._base, 0), steps)
        self.span_flops, self.span_launches = max(self.span_flops, flops), max(self.span_launches, steps)
        return out


@torch.no_grad()
def work_span(model: nn.Module | object, x: Tensor) -> WorkSpan:
    """The work and span of ``model(x)`` (in eval mode, without gradients)."""
    if isinstance(model, nn.Module):
        model.eval()
    with _Counter() as counter:
        model(x)
    return WorkSpan(counter.work_flops, counter.span_flops, counter.launches, counter.span_launches)


def sweep(name: str, model: nn.Module, lengths: Sequence[int], *, size: int = 32, batch: int = 1) -> list[dict]:
    """One row per clip length T: :func:`work_span` of a ``(batch, 3, T, size, size)`` clip; a T the model cannot
    take gives a row with ``error`` set."""
    rows = []
    for t in lengths:
        row = {"model": name, "T": t, "batch": batch, "size": size, "error": ""}
        try:
            row.update(work_span(model, torch.randn(batch, 3, t, size, size)).as_dict())
        except (RuntimeError, ValueError) as exc:  # e.g. a clip shorter than the model's temporal kernels
            row["error"] = str(exc).splitlines()[0]
        rows.append(row)
    return rows


def markdown(rows: Sequence[dict]) -> str:
    """Per model and T: work and span (GFLOPs, launches) and their ratio, the available parallelism."""
    lines = [("| model | T | work GFLOPs | span kFLOPs | parallelism (FLOPs) | launches | span launches | "
              "parallelism (launches) |"), "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["error"]:
            lines.append(f"| {r['model']} | {r['T']} | {r['error']} | | | | | |")
            continue
        lines.append(f"| {r['model']} | {r['T']} | {r['work_flops'] / 1e9:.3f} | {r['span_flops'] / 1e3:.1f} | "
                     f"{r['parallelism']:.3g} | {r['launches']} | {r['span_launches']} | "
                     f"{r['launch_parallelism']:.1f} |")
    return "\n".join(lines)


def plot(rows: Sequence[dict], path) -> None:
    """Available parallelism against T per model, in FLOPs and in launches (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    try:
        for name in dict.fromkeys(r["model"] for r in rows):
            ok = [r for r in rows if r["model"] == name and not r["error"]]
            for ax, key in zip(axes, ("parallelism", "launch_parallelism")):
                ax.plot([r["T"] for r in ok], [r[key] for r in ok], marker=".", label=name)
        for ax, what in zip(axes, ("FLOPs", "kernel launches")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("clip length T (frames)")
            ax.set_ylabel(f"work / span ({what})")
            ax.grid(alpha=0.3, which="both")
        size, batch = rows[0]["size"], rows[0]["batch"]
        fig.suptitle(f"Available parallelism of one clip ({batch} x 3 x T x {size} x {size}), counted operator by "
                     "operator")
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        save_png(fig, path, dpi=120)
    finally:
        plt.close(fig)


__all__ = ["WorkSpan", "markdown", "plot", "sweep", "work_span"]
