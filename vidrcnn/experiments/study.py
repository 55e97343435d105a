"""The comparison study behind ``make study``: which architecture captures which temporal structure.

Every family at matched size (:data:`MODELS`) is trained with its ``configs/synthetic_<model>.yaml``, which all share
one recipe (``configs/synthetic.yaml``: same data, clip sampling, augmentation and epochs), on the synthetic
UCF101-format dataset (:mod:`vidrcnn.data.synthetic`), once per seed. Each final model (not the best epoch: the test
split is the only held-out set) is scored on the test split exactly as ``tools/test.py`` does, its accuracy split by
class kind (local motion, long-range order, static), and, for causal models, its early predictions: the accuracy of
the streaming per-frame logits after t of the clip's frames.

Every run keeps its result in ``OUT/<model>/seed<k>/result.json``; a study that is stopped continues where it left
off (a run stopped mid-training resumes from its last checkpoint). :func:`write_report` turns the results into
``docs/reports/model_comparison.md`` with its plots; the findings paragraphs there are generated from the numbers, so they always say
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

log = logging.getLogger(__name__)

MODELS = ("rcn_rnn_s", "rcn_rcl_s", "rcn_gru_s", "rcn_lstm_s", "rcn_mingru_s", "cnn_lstm_s", "c3d_s", "frame_avg_s")
SEEDS = (0, 1, 2)
CONTROL = "frame_avg_s"
BASELINE = "c3d_s"  # the model the time to accuracy is compared with (the 3-D CNN)
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
    # Validation after every epoch, so that each run has an accuracy-against-seconds curve (time to accuracy).
    cfg = load_config(CONFIGS / f"synthetic_{model_name}.yaml",
                      [f"data.root={os.fspath(data_root)}", f"seed={seed}", "train.eval_every=1", *overrides])
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
        # (training seconds so far, validation top-1) after each validated epoch
        "curve": [[e["elapsed_s"], e["val_top1"]] for e in epochs if "val_top1" in e and "elapsed_s" in e],
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
TARGET_TOP1 = 0.85  # the validation top-1 whose time the report gives (time to accuracy, as DAWNBench ranks)


def seconds_to(curve: Sequence[Sequence[float]], top1: float = TARGET_TOP1) -> float | None:
    """The training seconds at the first validation that reached ``top1`` (None: never reached)."""
    return next((seconds for seconds, acc in curve if acc >= top1), None)


def time_to_target(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """How many of ``runs`` reached :data:`TARGET_TOP1` and their mean ± std seconds to it (``seconds`` None when
    none did); None when a run has no curve (runs of older vidrcnn versions)."""
    if not all("curve" in r for r in runs):
        return None
    reached = [t for t in (seconds_to(r["curve"]) for r in runs) if t is not None]
    return {"reached": len(reached), "runs": len(runs), "seconds": mean_std(reached) if reached else None}


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
        if (reach := time_to_target(runs)) is not None:
            row["seconds_to_target"] = reach
        row["train_top1"] = mean_std([r["train_top1"] for r in runs])
        if all(r.get("early") for r in runs):
            row["early"] = {k: [statistics.fmean(v) for v in zip(*(r["early"][k] for r in runs))]
                            for k in runs[0]["early"]}
        rows.append(row)
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


__all__ = ["MODELS", "SEEDS", "early_accuracy", "mean_std", "run_one", "run_study", "seconds_to", "summarize", "time_to_target"]
