"""The comparison study behind ``make study``: which architecture captures which temporal structure.

Every family at matched size (:data:`MODELS`) is trained with its ``configs/synthetic_<model>.yaml``, which all share
one recipe (``configs/synthetic.yaml``: same data, clip sampling, augmentation and epochs), on the synthetic
UCF101-format dataset (:mod:`vidrcnn.data.synthetic`), once per seed. Each final model (not the best epoch: the test
split is the only held-out set) is scored on the test split exactly as ``tools/test.py`` does, its accuracy split by
class kind (local motion, long-range order, static), and, for causal models, its early predictions: the accuracy of
the streaming per-frame logits after t of the clip's frames.

Every run keeps its result in ``OUT/<model>/seed<k>/result.json``; a study that is stopped continues where it left
off (a run stopped mid-training resumes from its last checkpoint). :func:`write_report` turns the results into
``docs/results.md`` with its plots; the findings paragraphs there are generated from the numbers, so they always say
what the table says.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidrcnn.engine.config import config_dir
from vidrcnn.engine.evaluate import accuracy_by_group, evaluate, prepare_test, write_result
from vidrcnn.errors import VidrcnnError
from vidrcnn.outputs import save_png

log = logging.getLogger(__name__)

MODELS = ("rcn_rnn_s", "rcn_rcl_s", "rcn_gru_s", "rcn_lstm_s", "rcn_mingru_s", "cnn_lstm_s", "c3d_s", "frame_avg_s")
SEEDS = (0, 1, 2)
CONTROL = "frame_avg_s"
KINDS = {"local": "local motion", "global": "long-range order", "static": "no motion"}
# The control may beat the single-frame ceiling by chance on a finite test set, not by more than this.
LEAK_TOLERANCE = 0.05
UNDERFIT = 0.9  # training top-1 below this at the last epoch: the model is still learning
CONFIGS = config_dir()


# -- one run ---------------------------------------------------------------------------------------------------------
@torch.no_grad()
def early_accuracy(model: nn.Module, loader: Iterable[Mapping[str, Any]], kinds: Sequence[str],
                   device: str = "cpu") -> dict[str, list[float]]:
    """Accuracy of a causal model's streaming per-frame logits after t = 1..T frames, overall and per class kind.

    ``kinds[label]`` is the kind of each class. One clip per video (``(B, C, T, H, W)`` batches); unreadable videos
    (``ok`` False) count as wrong, as in :func:`vidrcnn.engine.evaluate.evaluate`. Returns ``{"all": [...],
    kind: [...]}`` with one accuracy per number of frames seen.
    """
    model.eval()
    correct: dict[str, torch.Tensor] = {}
    total: dict[str, int] = {}
    for batch in loader:
        video, labels = batch["video"], batch["label"]
        if video.dim() != 5:
            raise ValueError(f"early_accuracy needs one clip per video, got a batch of shape {tuple(video.shape)}")
        logits, _ = model.stream(video.to(device))  # (B, T, K)
        hits = (logits.argmax(-1).cpu() == labels[:, None])  # (B, T)
        if "ok" in batch:
            hits &= batch["ok"][:, None]
        for key in ("all", *sorted(set(kinds))):
            rows = hits if key == "all" else hits[torch.tensor([kinds[int(y)] == key for y in labels])]
            correct[key] = correct.get(key, 0) + rows.sum(0)
            total[key] = total.get(key, 0) + rows.shape[0]
    return {k: (correct[k] / max(total[k], 1)).tolist() for k in correct if total[k]}


def count_flops_per_clip(model: nn.Module, num_frames: int, size: int) -> int:
    """FLOPs of one forward pass on a ``(1, 3, num_frames, size, size)`` clip (torch's flop counter)."""
    from vidrcnn.profiling.measure import count_flops

    x = torch.zeros(1, 3, num_frames, size, size)
    model.eval()
    with torch.no_grad():
        return count_flops(lambda: model(x), model)


def run_one(model_name: str, seed: int, data_root: str | os.PathLike, out_dir: str | os.PathLike,
            overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Train ``model_name`` with ``seed`` on ``data_root`` into ``out_dir`` and score it; the result dict is also
    written to ``out_dir/result.json``, and returned from there without work when it already exists."""
    from vidrcnn.engine.config import load_config
    from vidrcnn.engine.train import fit

    out = Path(out_dir)
    done = out / "result.json"
    if done.is_file():
        result = json.loads(done.read_text(encoding="utf-8"))
        if result.get("overrides", []) != list(overrides):
            raise VidrcnnError(f"{done} was produced with overrides {result.get('overrides', [])}, not "
                               f"{list(overrides)}: choose another --out, or delete it to train again")
        return result
    cfg = load_config(CONFIGS / f"synthetic_{model_name}.yaml",
                      [f"data.root={os.fspath(data_root)}", f"seed={seed}", *overrides])
    start = time.perf_counter()
    fit(cfg, out, resume=True)
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if line]
    meta = json.loads((Path(cfg.data.root) / "classes.json").read_text(encoding="utf-8"))
    kind_of = {c["name"]: c["kind"] for c in meta["classes"]}

    setup = prepare_test(out / "checkpoint_last.pt")
    scores = evaluate(setup.model, setup.loader, len(setup.classes), classes=setup.classes, device=setup.device)
    result = {
        "model": model_name,
        "seed": seed,
        "overrides": list(overrides),
        "top1": scores["top1"],
        "by_kind": accuracy_by_group(scores["per_class"], kind_of),
        "num_videos": scores["num_videos"],
        "skipped": scores["skipped"],
        "classes": setup.classes,
        "confusion": scores["confusion"],
        "confusion_columns": scores["confusion_columns"],
        "params": sum(p.numel() for p in setup.model.parameters()),
        "flops": count_flops_per_clip(setup.model, cfg.data.num_frames, cfg.data.size),
        "train_top1": epochs[-1]["train_top1"],  # last epoch, on the training clips: is the model still learning?
        "train_seconds": sum(e["seconds"] for e in epochs),  # training epochs only (this process, this run)
        "epochs": len(epochs),
        "early": (early_accuracy(setup.model, setup.loader, [kind_of[c] for c in setup.classes], setup.device)
                  if getattr(setup.model, "is_causal", False) else None),
        "single_frame_ceiling": meta["single_frame_ceiling"],
        "wall_seconds": time.perf_counter() - start,  # training, scoring and the early predictions
        "machine": _machine(),  # where these seconds were measured (reports gather runs of several machines)
        "config": {"data.num_frames": cfg.data.num_frames, "data.sampling": cfg.data.sampling,
                   "data.size": cfg.data.size, "train.epochs": cfg.train.epochs,
                   "train.batch_size": cfg.train.batch_size, "train.lr": cfg.train.lr},
    }
    write_result(result, done)
    return result


# -- aggregation -------------------------------------------------------------------------------------------------------
def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value: one seed has no spread)."""
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def summarize(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per model (in order of first appearance): mean and std over seeds of every accuracy, and the costs."""
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        by_model.setdefault(r["model"], []).append(r)
    rows = []
    for name, runs in by_model.items():
        row: dict[str, Any] = {"model": name, "seeds": [r["seed"] for r in runs], "top1": mean_std([r["top1"] for r in runs])}
        for kind in sorted({k for r in runs for k in r["by_kind"]}):
            row[kind] = mean_std([r["by_kind"][kind] for r in runs if kind in r["by_kind"]])
        row["params"] = runs[0]["params"]
        row["flops"] = runs[0]["flops"]
        row["train_seconds"] = mean_std([r["train_seconds"] for r in runs])
        row["train_top1"] = mean_std([r["train_top1"] for r in runs])
        if all(r.get("early") for r in runs):
            row["early"] = {k: [statistics.fmean(v) for v in zip(*(r["early"][k] for r in runs))]
                            for k in runs[0]["early"]}
        rows.append(row)
    return rows


# -- the report --------------------------------------------------------------------------------------------------------
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


def write_report(results: Sequence[Mapping[str, Any]], doc: str | os.PathLike, *, command: str,
                 early_at: int = 8) -> list[dict[str, Any]]:
    """Write the markdown report ``doc`` and its plots (``<doc dir>/img/<doc stem>_*.png``); returns :func:`summarize`."""
    from vidrcnn.engine.plots import plot_confusion

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
        "| model | top-1 | " + " | ".join(KINDS[k] for k in kinds) + " | train top-1 | params | GFLOPs/clip | train s |",
        "|---|---|" + "---|" * len(kinds) + "---|---|---|---|",
    ]
    for r in rows:
        note = f" (ceiling {100 * ceiling:.1f})" if r["model"] == CONTROL else ""
        lines.append(f"| `{r['model']}` | {_pm(r['top1'])}{note} | " + " | ".join(_pm(r[k]) if k in r else "" for k in kinds)
                     + f" | {_pm(r['train_top1'])} | {r['params'] / 1e6:.3f}M | {r['flops'] / 1e9:.2f} | "
                     f"{r['train_seconds'][0]:.0f} |")
    minutes = sum(r["wall_seconds"] for r in results) / 60
    lines += ["", (f"Train top-1: on the training clips during the last epoch. Train s: seconds of training per run (mean over seeds). The {len(results)} runs took {minutes:.1f} "
              f"minutes in all, training and scoring, on {_machine()}."), ""]

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


def _machine() -> str:
    import platform

    return f"{os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}, {torch.get_num_threads()} threads"


def run_study(data_root: str | os.PathLike, out_dir: str | os.PathLike, *, models: Sequence[str] = MODELS,
              seeds: Sequence[int] = SEEDS, overrides: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Run (or pick up) every ``(model, seed)`` and return their results, model by model."""
    results = []
    total = len(models) * len(seeds)
    for i, (name, seed) in enumerate(((m, s) for m in models for s in seeds), 1):
        log.info("[%d/%d] %s seed %d", i, total, name, seed)
        result = run_one(name, seed, data_root, Path(out_dir) / name / f"seed{seed}", overrides)
        log.info("[%d/%d] %s seed %d: top-1 %.3f (%s), %.0f s", i, total, name, seed, result["top1"],
                 ", ".join(f"{k} {v:.3f}" for k, v in result["by_kind"].items()), result["train_seconds"])
        results.append(result)
    return results


__all__ = ["MODELS", "SEEDS", "early_accuracy", "findings", "mean_std", "run_one", "run_study", "summarize",
           "write_report"]
