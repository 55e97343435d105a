"""A run's records: ``metrics.jsonl`` (one JSON object per epoch), TensorBoard scalars when tensorboard is installed,
and ``curves.png`` (loss and accuracy per epoch). Only rank 0 builds a :class:`RunLog`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidrcnn.outputs import save_png

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The epochs recorded in a ``metrics.jsonl``, in order."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class RunLog:
    """Writes the per-epoch records of a run into ``out_dir``.

    ``history`` is what a resumed run already has (from its checkpoint): ``metrics.jsonl`` is rewritten from it, so
    a line written after the last checkpoint by a killed run does not appear twice.
    """

    def __init__(self, out_dir: str | os.PathLike, history: Sequence[dict[str, Any]] = (), *, tensorboard: bool = True):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.out_dir / METRICS_FILE
        self.history: list[dict[str, Any]] = [dict(m) for m in history]
        tmp = self.metrics_path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(m) + "\n" for m in self.history), encoding="utf-8")
        os.replace(tmp, self.metrics_path)
        self._tb = _tensorboard_writer(self.out_dir / "tb") if tensorboard else None

    def log_epoch(self, metrics: dict[str, Any]) -> None:
        """Append one epoch to metrics.jsonl (and TensorBoard), then redraw curves.png."""
        self.history.append(dict(metrics))
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(metrics) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
                    self._tb.add_scalar(key.replace("_", "/", 1), value, metrics["epoch"])
            self._tb.flush()
        plot_curves(self.history, self.out_dir / CURVES_FILE)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _tensorboard_writer(path: Path):
    """A SummaryWriter, or None when tensorboard is not installed (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises ImportError when the tensorboard package is missing
        log.debug("tensorboard is not installed; metrics go to metrics.jsonl only")
        return None
    return SummaryWriter(os.fspath(path))


def plot_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Loss (train, val) and top-1 accuracy (train, val) per epoch, side by side, written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(key: str) -> tuple[list[int], list[float]]:
        pts = [(m["epoch"], m[key]) for m in history if isinstance(m.get(key), (int, float)) and math.isfinite(m[key])]
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        xs, ys = series(key)
        if xs:
            ax_loss.plot(xs, ys, marker="o", label=label)
    for key, label in (("train_top1", "train (clip)"), ("val_top1", "val (centre clip)")):
        xs, ys = series(key)
        if xs:
            ax_acc.plot(xs, ys, marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="top-1 accuracy", title="accuracy", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    save_png(fig, tmp)
    plt.close(fig)
    os.replace(tmp, path)
