"""Evaluation plots: the confusion matrix as a PNG (matplotlib, headless)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from vidrcnn.outputs import save_png


def plot_confusion(
    confusion: Sequence[Sequence[int]] | np.ndarray,
    rows: Sequence[str],
    path: str | os.PathLike,
    *,
    columns: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Save ``confusion`` (rows: true class, columns: predicted) to ``path``, each row normalised to sum to 1.

    ``columns`` defaults to ``rows``; it may be longer (e.g. an extra ``unreadable`` column). Counts are written in
    the cells when there are at most 20 classes; past that the labels get small and the cells stay unlabelled.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed; safe to call in workers and CI
    import matplotlib.pyplot as plt

    counts = np.asarray(confusion, dtype=np.int64)
    columns = list(columns) if columns is not None else list(rows)
    if counts.shape != (len(rows), len(columns)):
        raise ValueError(f"confusion of shape {counts.shape} for {len(rows)} rows and {len(columns)} columns")
    fractions = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    n = max(len(rows), len(columns))
    side = min(4 + 0.25 * n, 30)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    try:
        image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
        font = max(3, min(9, int(300 / max(n, 1))))
        ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=font)
        ax.set_yticks(range(len(rows)), rows, fontsize=font)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if n <= 20:
            for (i, j), value in np.ndenumerate(counts):
                if value:
                    color = "white" if fractions[i, j] > 0.5 else "black"
                    ax.text(j, i, str(value), ha="center", va="center", fontsize=font, color=color)
        if title:
            ax.set_title(title)
        fig.tight_layout()
        save_png(fig, path)
    finally:
        plt.close(fig)
