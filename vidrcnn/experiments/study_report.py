"""The comparison study's report (docs/reports/model_comparison.md): the table, the findings written from the numbers, the early
prediction, time to accuracy and the best model's confusion matrix. The runs are :mod:`vidrcnn.experiments.study`'s.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidrcnn.engine.plots import plot_confusion
from vidrcnn.experiments.study import (
    BASELINE,
    CONTROL,
    KINDS,
    LEAK_TOLERANCE,
    TARGET_TOP1,
    UNDERFIT,
    _machine,
    summarize,
)
from vidrcnn.outputs import save_png


def _pm(ms: tuple[float, float], scale: float = 100.0, digits: int = 1) -> str:
    if ms[1] is None:  # one seed: no spread to show
        return f"{scale * ms[0]:.{digits}f}"
    return f"{scale * ms[0]:.{digits}f} ± {scale * ms[1]:.{digits}f}"


def _ranking(rows: Sequence[Mapping[str, Any]], key: str) -> str:
    ranked = sorted((r for r in rows if key in r), key=lambda r: -r[key][0])
    return ", ".join(f"`{r['model']}` {_pm(r[key])}" for r in ranked)


def _above(rows: Sequence[Mapping[str, Any]], key: str, ref: Mapping[str, Any]) -> list[str]:
    """Models whose mean beats ``ref``'s by more than both standard deviations together."""
    return [r["model"] for r in rows if r is not ref and key in r and key in ref
            and r[key][0] - ref[key][0] > r[key][1] + ref[key][1]]


def findings(rows: Sequence[Mapping[str, Any]], ceiling: float, early_at: int) -> list[str]:
    """The findings paragraphs: each states numbers from ``rows`` and nothing they do not show."""
    out = []
    single = any(r["top1"][1] is None for r in rows)
    control = next((r for r in rows if r["model"] == CONTROL), None)
    if control is not None:
        gap = control["top1"][0] - ceiling
        if gap > LEAK_TOLERANCE:
            verdict = (f"It exceeds the ceiling by {100 * gap:.1f} points: single frames leak the label, and the "
                       "dataset must be fixed before this table can be read.")
        else:
            verdict = f"It does not exceed the ceiling by more than {100 * LEAK_TOLERANCE:.0f} points: no leak found."
            if gap < -LEAK_TOLERANCE:
                verdict += (f" It is {100 * -gap:.1f} points below it: in this budget it has not learned all that "
                            "single frames show.")
        above = [r for r in rows if r["top1"][0] - (r["top1"][1] or 0.0) > ceiling + LEAK_TOLERANCE and r is not control]
        if above:
            verdict += (" Above the ceiling by more than the tolerance and the seed spread, so using frame order: "
                        + ", ".join(f"`{r['model']}` {_pm(r['top1'])}" for r in above) + ".")
        kinds = "; ".join(f"{KINDS.get(k, k)} {_pm(control[k])}" for k in KINDS if k in control)
        out.append(f"**The control.** `{CONTROL}` sees frames but not their order. Its top-1 is "
                   f"{_pm(control['top1'])}% against a single-frame ceiling of {100 * ceiling:.1f}% (computed from the "
                   f"class definitions: within a time-reversed pair a frame-only model can be right half the time). "
                   f"{verdict} By kind: {kinds}.")
    for kind in ("local", "global"):
        if not any(kind in r for r in rows):
            continue
        text = f"**{KINDS[kind].capitalize()}.** Accuracy on the {KINDS[kind]} classes, best first: {_ranking(rows, kind)}."
        if control is not None and kind in control and single:
            text += " One seed: no spread to tell differences from noise."
        elif control is not None and kind in control:
            better = _above(rows, kind, control)
            text += (f" Above the control by more than the seed spread of both: {', '.join(f'`{m}`' for m in better)}."
                     if better else " No model is above the control by more than the seed spread of both.")
        out.append(text)
    best = max(rows, key=lambda r: r["top1"][0], default=None)
    if len(rows) > 1 and single:
        out.append(f"**Overall.** The highest top-1 is `{best['model']}` at {_pm(best['top1'])}%, from one seed each: "
                   "differences between single runs are not tested.")
    elif len(rows) > 1:
        close = [r["model"] for r in rows if r is not best
                 and best["top1"][0] - r["top1"][0] <= best["top1"][1] + r["top1"][1]]
        out.append(f"**Overall.** The highest mean top-1 is `{best['model']}` at {_pm(best['top1'])}%"
                   + (f"; within the seed spread of it: {', '.join(f'`{m}`' for m in close)}." if close
                      else "; every other model is below it by more than the seed spread of both.")
                   + f" With {len(best['seeds'])} seed(s) and one short budget, differences inside the spread are not "
                   "resolved.")
    learning = [r for r in rows if r["train_top1"][0] < UNDERFIT]
    if learning:
        out.append(f"**Budget.** At the last epoch these models are still below {100 * UNDERFIT:.0f}% on their own "
                   "training clips: " + ", ".join(f"`{r['model']}` {_pm(r['train_top1'])}" for r in learning)
                   + ". Their rows measure how far each gets in this budget, not what it can reach; the budget is the "
                   "same for every model (`train.epochs`).")
    causal = [r for r in rows if r.get("early") and "global" in r["early"]]
    if causal:
        parts = [f"`{r['model']}` {100 * r['early']['global'][early_at - 1]:.1f}% after {early_at} frames, "
                 f"{100 * r['early']['global'][-1]:.1f}% after {len(r['early']['global'])}" for r in causal]
        out.append(f"**Early prediction.** The later event of an order pair happens in the last third of the clip. On "
                   f"the long-range-order classes the causal models reach: {'; '.join(parts)}.")
    return out


def _plot_early(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    causal = [r for r in rows if r.get("early")]
    panels = [k for k in ("all", "local", "global") if all(k in r["early"] for r in causal)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8), sharey=True, squeeze=False)
    try:
        for ax, key in zip(axes[0], panels):
            for r in causal:
                curve = r["early"][key]
                ax.plot(range(1, len(curve) + 1), curve, marker=".", label=r["model"])
            ax.set_title("all classes" if key == "all" else f"{KINDS[key]} classes")
            ax.set_xlabel("frames seen (of the clip's 16 segments)")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("top-1 (mean over seeds)")
        axes[0][-1].legend(fontsize=8)
        fig.tight_layout()
        save_png(fig, path)
    finally:
        plt.close(fig)


def _seconds_cell(row: Mapping[str, Any]) -> str:
    reach = row.get("seconds_to_target")
    if reach is None:
        return "n/a"
    if reach["seconds"] is None:
        return "not reached"
    mean, std = reach["seconds"]
    text = f"{mean:.0f}" + ("" if std is None else f" ± {std:.0f}")
    return text if reach["reached"] == reach["runs"] else f"{text} ({reach['reached']} of {reach['runs']} seeds)"


def _seconds_ratio(row: Mapping[str, Any], base: Mapping[str, Any] | None) -> str:
    """``row``'s mean seconds to the target over ``base``'s, where every seed of both reached it."""
    full = [r.get("seconds_to_target") for r in (row, base) if r is not None]
    if len(full) < 2 or any(f is None or f["reached"] < f["runs"] for f in full):
        return "—"
    return f"{full[0]['seconds'][0] / full[1]['seconds'][0]:.2f}x"


def _plot_time_to_accuracy(results: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Validation top-1 against training seconds, a line per model (mean over seeds) in a band (their range)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_model: dict[str, list[Sequence[Sequence[float]]]] = {}
    for r in results:
        if r.get("curve"):
            by_model.setdefault(r["model"], []).append(r["curve"])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    try:
        for name, curves in by_model.items():
            end = min(c[-1][0] for c in curves)  # every seed has a point up to here
            grid = np.linspace(max(c[0][0] for c in curves), end, 60)  # where every seed has its first point
            values = np.array([np.interp(grid, [p[0] for p in c], [100 * p[1] for p in c]) for c in curves])
            (line,) = ax.plot(grid, values.mean(0), label=name)
            if len(curves) > 1:
                ax.fill_between(grid, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)
        ax.axhline(100 * TARGET_TOP1, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlabel("training seconds (validation excluded)")
        ax.set_ylabel("validation top-1 (%)")
        ax.set_title(f"Time to accuracy: mean over seeds, band = their range; dashed: {100 * TARGET_TOP1:.0f}%")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        save_png(fig, path)
    finally:
        plt.close(fig)


def write_report(results: Sequence[Mapping[str, Any]], doc: str | os.PathLike, *, command: str,
                 early_at: int = 8) -> list[dict[str, Any]]:
    """Write the markdown report ``doc`` and its plots (``<doc dir>/img/<doc stem>_*.png``); returns :func:`summarize`."""
    doc = Path(doc)
    img = doc.parent / "img"
    img.mkdir(parents=True, exist_ok=True)
    rows = summarize(results)
    ceiling = results[0]["single_frame_ceiling"]
    conf = results[0]["config"]
    kinds = [k for k in KINDS if any(k in r for r in rows)]
    lines = [
        "# Results: which architecture captures which temporal structure",
        "",
        f"<!-- Generated by `{command}`; do not edit by hand. -->",
        "",
        (f"Synthetic UCF101-format dataset (`vidrcnn/data/synthetic.py`), split 1: {results[0]['num_videos']} test "
        f"videos, 11 classes. Every model: {conf['data.num_frames']} frames per clip ({conf['data.sampling']} sampling), "
        f"{conf['data.size']}x{conf['data.size']} pixels, {conf['train.epochs']} epochs, batch {conf['train.batch_size']}, "
        f"AdamW at lr {conf['train.lr']:g} (`configs/synthetic.yaml`); seeds {', '.join(map(str, rows[0]['seeds']))}. "
        "Video-level top-1 of the final model on the test split, mean ± std over seeds, in %. Chance is "
        f"{100 / len(results[0]['classes']):.1f}%; the single-frame ceiling, the best a model blind to order can "
        f"do, is **{100 * ceiling:.1f}%**."),
        "",
        "| model | top-1 | " + " | ".join(KINDS[k] for k in kinds)
        + f" | train top-1 | params | GFLOPs/clip | train s | s to {100 * TARGET_TOP1:.0f}% val | ÷ {BASELINE} |",
        "|---|---|" + "---|" * len(kinds) + "---|---|---|---|---|---|",
    ]
    base = next((r for r in rows if r["model"] == BASELINE), None)
    for r in rows:
        note = f" (ceiling {100 * ceiling:.1f})" if r["model"] == CONTROL else ""
        lines.append(f"| `{r['model']}` | {_pm(r['top1'])}{note} | " + " | ".join(_pm(r[k]) if k in r else "" for k in kinds)
                     + f" | {_pm(r['train_top1'])} | {r['params'] / 1e6:.3f}M | {r['flops'] / 1e9:.2f} | "
                     f"{r['train_seconds'][0]:.0f} | {_seconds_cell(r)} | {_seconds_ratio(r, base)} |")
    minutes = sum(r["wall_seconds"] for r in results) / 60
    lines += ["", (f"Train top-1: on the training clips during the last epoch. Train s: seconds of training per run "
                   f"(mean over seeds). s to {100 * TARGET_TOP1:.0f}% val: training seconds (validation excluded) "
                   f"until the first epoch whose validation top-1 reached {100 * TARGET_TOP1:.0f}%, mean ± std over "
                   f"the seeds that reached it; ÷ {BASELINE}: that time over {BASELINE}'s, where every seed of both "
                   f"reached it. The {len(results)} runs took {minutes:.1f} minutes in all, training and scoring, on "
                   f"{_machine()}."), ""]
    if any(r.get("curve") for r in results):
        _plot_time_to_accuracy(results, img / f"{doc.stem}_time_to_accuracy.png")
        lines += ["## Time to accuracy", "",
                  ("Validation top-1 after each epoch against the training seconds spent so far: the figure that "
                   "says which model to train when time counts, not seconds per epoch nor final accuracy alone."), "",
                  f"![time to accuracy](img/{doc.stem}_time_to_accuracy.png)", ""]

    lines += ["## Findings", ""]
    for paragraph in findings(rows, ceiling, early_at):
        lines += [paragraph, ""]

    if any(r.get("early") for r in rows):
        _plot_early(rows, img / f"{doc.stem}_early.png")
        causal = [r for r in rows if r.get("early")]
        steps = [t for t in (1, 4, 8, 12, 16) if t <= len(causal[0]["early"]["all"])]
        table = ["| model | " + " | ".join(f"t = {t}" for t in steps) + " |", "|---|" + "---|" * len(steps)]
        for key in ("all", "global"):
            for r in causal:
                if key in r["early"]:
                    label = "" if key == "all" else f" ({KINDS[key]} classes)"
                    table.append(f"| `{r['model']}`{label} | "
                                 + " | ".join(f"{100 * r['early'][key][t - 1]:.1f}" for t in steps) + " |")
        lines += ["## Early prediction", "",
                  ("Accuracy of the causal models' streaming per-frame predictions after t of the clip's frames (mean "
                  "over seeds). The 16 frames span the whole video; an order class can only be told from its pair "
                  "once the later event has been seen."), "", *table, "", f"![early prediction](img/{doc.stem}_early.png)", ""]

    best = max(rows, key=lambda r: r["top1"][0])
    runs = [r for r in results if r["model"] == best["model"]]
    total = [[sum(vals) for vals in zip(*rows_)] for rows_ in zip(*(r["confusion"] for r in runs))]
    plot_confusion(total, runs[0]["classes"], img / f"{doc.stem}_confusion.png", columns=runs[0]["confusion_columns"],
                   title=f"{best['model']}, test split, {len(runs)} seed(s) summed")
    lines += ["## Confusion matrix of the best model", "",
              f"`{best['model']}`, counts summed over its seeds (rows: true class).", "",
              f"![confusion matrix](img/{doc.stem}_confusion.png)", ""]
    doc.write_text("\n".join(lines), encoding="utf-8")
    return rows


__all__ = ["findings", "write_report"]
