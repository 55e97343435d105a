"""Latency at equal work: the sequential bottleneck shown on any machine.

The frames per call are held at ``N = B x T`` while ``T`` sweeps 1, 2, 4, ..., N with ``B = N / T``. A model whose
time axis is parallel work (a 3-D CNN, the frame-only model) does the same work side by side whatever ``T``, so its
latency stays near flat; a recurrent model must run its ``T`` steps one after another, so it pays per dependent
step. The figure is the *slowdown*: the latency at ``T = N`` over the latency at the shortest ``T`` the model
accepts (1 for most; a model that cannot take it gets an error row, and the slowdown says which ``T`` it starts
from). The sweep is repeated; ``slowdown_low`` and ``slowdown_high`` bound the slowdown by the fastest and slowest
repeat of each end, so that two models' slowdowns are called different only when those ranges do not overlap
(:func:`resolved`).

Used by ``tools/profile.py --equal-work N`` and ``benchmarks/gpu_suite.py``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import torch
from torch import nn

from vidrcnn.outputs import save_png
from vidrcnn.profiling.measure import forward_backward, time_fn


def lengths_for(frames: int) -> list[int]:
    """The clip lengths of the sweep: the powers of two up to ``frames`` that divide it, and ``frames`` itself."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    out = [2**k for k in range(int(math.log2(frames)) + 1) if frames % 2**k == 0]
    return out if out[-1] == frames else [*out, frames]


def equal_work(name: str, model: nn.Module, *, frames: int = 64, size: int = 32, device: str = "cpu",
               warmup: int = 2, iters: int = 10, train: bool = False, repeats: int = 3) -> list[dict]:
    """One row per ``T`` of :func:`lengths_for`: ``forward_ms``, the latency of a ``(N / T, 3, T, size, size)``
    batch, and with ``train`` the same for forward + backward (``train_ms``); then the slowdowns against the first
    ``T`` that ran. A ``T`` the model cannot take gives a row with ``error`` set.

    The whole sweep runs ``repeats`` times, so that a drift of the machine (another process, the clock) falls on
    every ``T`` alike: ``*_ms`` is the median of the repeats' medians, ``*_low_ms``/``*_high_ms`` their extremes (with
    one repeat, the quartiles of its calls)."""
    device_ = torch.device(device)
    model = model.to(device_)
    inputs = {t: torch.randn(frames // t, 3, t, size, size, device=device_) for t in lengths_for(frames)}
    timings: dict[tuple[str, int], list] = {}
    errors: dict[int, str] = {}
    for _ in range(repeats):
        for t, x in inputs.items():
            if t in errors:
                continue
            try:
                model.eval()
                with torch.no_grad():
                    timings.setdefault(("forward", t), []).append(
                        time_fn(lambda x=x: model(x), device=device_, warmup=warmup, iters=iters))
                if train:
                    model.train()
                    timings.setdefault(("train", t), []).append(
                        time_fn(forward_backward(model, x), device=device_, warmup=warmup, iters=iters))
            except (RuntimeError, ValueError) as exc:  # e.g. a clip shorter than a 3-D CNN's temporal kernel
                errors[t] = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            finally:
                model.eval()
                model.zero_grad(set_to_none=True)
    rows = []
    for t in inputs:
        row = {"model": name, "T": t, "batch": frames // t, "frames": frames, "size": size, "repeats": repeats,
               "error": errors.get(t, "")}
        if not row["error"]:
            for kind in ("forward", "train"):
                if (kind, t) in timings:
                    row.update(_spread(kind, timings[(kind, t)]))
        rows.append(row)
    base = next((r for r in rows if not r["error"]), None)
    for r in rows:
        if base is None or r["error"]:
            continue
        r["from_T"] = base["T"]
        for kind in ("forward", "train"):
            if f"{kind}_ms" in r:
                prefix = "slowdown" if kind == "forward" else "train_slowdown"
                r[prefix] = r[f"{kind}_ms"] / base[f"{kind}_ms"]
                r[f"{prefix}_low"] = r[f"{kind}_low_ms"] / base[f"{kind}_high_ms"]
                r[f"{prefix}_high"] = r[f"{kind}_high_ms"] / base[f"{kind}_low_ms"]
    return rows


def _spread(kind: str, timings: Sequence) -> dict[str, float]:
    """The latency of one point and its range: over the repeats' medians, or, with one repeat, its calls' quartiles
    (clamped to the calls: quartiles of a few samples are extrapolated, even below 0)."""
    if len(timings) > 1:
        medians = sorted(t.median_ms for t in timings)
        return {f"{kind}_ms": statistics.median(medians), f"{kind}_low_ms": medians[0], f"{kind}_high_ms": medians[-1]}
    t = timings[0]
    return {f"{kind}_ms": t.median_ms, f"{kind}_low_ms": max(t.q25_ms, t.min_ms),
            f"{kind}_high_ms": min(t.q75_ms, t.max_ms)}


def slowdowns(rows: Sequence[dict], key: str = "slowdown") -> dict[str, dict]:
    """Per model, the row of its longest ``T`` that ran: the slowdown there and its range."""
    out: dict[str, dict] = {}
    for r in rows:
        if not r["error"] and key in r and r["T"] >= out.get(r["model"], {}).get("T", 0):
            out[r["model"]] = r
    return out


def resolved(a: dict, b: dict, key: str = "slowdown") -> bool:
    """Whether row ``a``'s slowdown is above ``b``'s beyond both ranges."""
    return a[f"{key}_low"] > b[f"{key}_high"]


def markdown(rows: Sequence[dict]) -> str:
    """One line per model: the slowdown at its longest ``T`` against its shortest, with the range, and the latencies."""
    train = any("train_ms" in r for r in rows)
    head = "| model | size | T from | T to | forward ms (from -> to) | slowdown (range) |"
    lines = [head + (" train slowdown (range) |" if train else ""),
             "|---|---|---|---|---|---|" + ("---|" if train else "")]
    first = {}
    for r in rows:
        if not r["error"]:
            first.setdefault(r["model"], r)
    for name, last in slowdowns(rows).items():
        line = (f"| {name} | {last['size']} | {last['from_T']} | {last['T']} | {first[name]['forward_ms']:.3g} -> "
                f"{last['forward_ms']:.3g} | {last['slowdown']:.2f}x ({last['slowdown_low']:.2f} to "
                f"{last['slowdown_high']:.2f}) |")
        if train:
            line += (f" {last['train_slowdown']:.2f}x ({last['train_slowdown_low']:.2f} to "
                     f"{last['train_slowdown_high']:.2f}) |" if "train_slowdown" in last else " |")
        lines.append(line)
    errors = [f"- {r['model']} T={r['T']}: {r['error']}" for r in rows if r["error"]]
    return "\n".join(lines + ([""] + errors if errors else []))


def plot(rows: Sequence[dict], path) -> None:
    """Slowdown against T per model, log-log; the title says the frames per call and the size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r["model"] for r in rows):
        pts = [(r["T"], r["slowdown"]) for r in rows if r["model"] == name and "slowdown" in r]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("T (frames per clip); batch = frames per call / T")
    ax.set_ylabel("latency / latency at the shortest T")
    sizes = sorted({r["size"] for r in rows})
    ax.set_title(f"Equal work: {rows[0]['frames']} frames per call, {'/'.join(map(str, sizes))} px")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path, dpi=120)
    plt.close(fig)


__all__ = ["equal_work", "lengths_for", "markdown", "plot", "resolved", "slowdowns"]
