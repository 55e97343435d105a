"""Test-set evaluation as UCF101 results are reported: multi-clip (and multi-crop) video-level accuracy.

Every test video is scored from N views (K uniform clips, times 3 crops with ``three_crop``). The video's score is
the mean of the views' softmax probabilities; ``top1``/``top5``/per-class accuracy and the confusion matrix use that
score. ``clip_top1`` is the accuracy of each single view on its own (what one forward pass gets).

A test video that cannot be decoded reaches us with ``ok=False`` (the dataset gives it a zero video, never drops it):
it counts as wrong in every accuracy and its path is listed under ``skipped``, so the denominator is always the whole
test list. The confusion matrix has one extra last column, ``unreadable``, so that each row sums to the class's
number of test videos.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
import yaml
from einops import rearrange
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from vidrcnn.data.datasets import VideoClipDataset, collate
from vidrcnn.data.splits import build_split
from vidrcnn.data.transforms import build_transform
from vidrcnn.engine.checkpoint import checkpoint_weights, load_checkpoint, model_from_checkpoint
from vidrcnn.engine.config import config_from_dict, config_to_dict, load_config
from vidrcnn.engine.cuda_graphs import GraphedForward
from vidrcnn.engine.distributed import resolve_device
from vidrcnn.errors import CheckpointError, ConfigError, DatasetError
from vidrcnn.layers.fold import fold_batch_norms
from vidrcnn.outputs import atomic_output

log = logging.getLogger(__name__)

UNREADABLE = "unreadable"


class ScoreTally:
    """Accumulates per-view probabilities into the metrics :func:`evaluate` returns.

    ``update`` takes one batch of view probabilities ``(B, N, K)``; ``result`` computes the metrics. Kept apart from
    the model loop so that the arithmetic can be checked on hand-made numbers.
    """

    def __init__(self, num_classes: int, classes: Sequence[str] | None = None, topk: int = 5):
        if classes is not None and len(classes) != num_classes:
            raise ValueError(f"{len(classes)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.classes = list(classes) if classes is not None else [str(i) for i in range(num_classes)]
        self.topk = min(topk, num_classes)
        # (K, K+1): rows are true classes, the last column counts unreadable videos.
        self.confusion = torch.zeros(num_classes, num_classes + 1, dtype=torch.long)
        self.topk_correct = 0
        self.view_correct = 0
        self.num_views = 0
        self.nll_sum = 0.0
        self.skipped: list[str] = []
        self.videos: list[dict[str, Any]] = []
        self.notes: dict[str, list[str]] = {}  # path -> what its decoder noted (e.g. that it may be truncated)

    def update(
        self,
        view_probs: torch.Tensor,
        labels: torch.Tensor | Sequence[int],
        ok: torch.Tensor | Sequence[bool] | None = None,
        paths: Sequence[str] | None = None,
        notes: Sequence[Sequence[str]] | None = None,
    ) -> None:
        """Add a batch: ``view_probs`` float ``(B, N, K)`` (softmax of each view), ``labels`` ``(B,)``.

        ``ok[b] = False`` marks an unreadable video: it is counted wrong whatever its (zero-video) scores say.
        ``notes[b]``: what the decoder noted about video b (listed in the result; the video is still scored).
        """
        view_probs = view_probs.detach().float().cpu()
        if view_probs.dim() == 2:
            view_probs = view_probs[:, None]
        b, n, k = view_probs.shape
        if k != self.num_classes:
            raise ValueError(f"scores have {k} classes, expected {self.num_classes}")
        labels = torch.as_tensor(labels, dtype=torch.long).cpu()
        ok = torch.ones(b, dtype=torch.bool) if ok is None else torch.as_tensor(ok, dtype=torch.bool).cpu()
        paths = list(paths) if paths is not None else [""] * b
        bad = [(int(y), p) for y, p in zip(labels, paths) if not 0 <= int(y) < self.num_classes]
        if bad:
            raise ValueError(f"label {bad[0][0]} out of range for {self.num_classes} classes ({bad[0][1]})")

        probs = view_probs.mean(1)  # (B, K): softmax averaged over clips and crops
        pred = probs.argmax(1)
        in_topk = (probs.topk(self.topk, dim=1).indices == labels[:, None]).any(1) & ok
        view_hits = ((view_probs.argmax(2) == labels[:, None]) & ok[:, None]).sum()

        self.topk_correct += int(in_topk.sum())
        self.view_correct += int(view_hits)
        self.num_views += b * n
        for i in range(b):
            label = int(labels[i])
            if ok[i]:
                self.confusion[label, pred[i]] += 1
                self.nll_sum += -math.log(max(float(probs[i, label]), 1e-12))
                entry = {"pred": int(pred[i]), "score": round(float(probs[i, pred[i]]), 6)}
            else:
                self.confusion[label, -1] += 1
                self.skipped.append(paths[i])
                entry = {"pred": None, "score": None}
            self.videos.append({"path": paths[i], "label": label, **entry, "ok": bool(ok[i])})
            if notes is not None and notes[i]:
                self.notes[paths[i]] = list(notes[i])

    def result(self) -> dict[str, Any]:
        """The metrics as a plain (JSON-ready) dict; accuracies are fractions in [0, 1]."""
        counts = self.confusion.sum(1)  # test videos per class, unreadable included
        correct = self.confusion.diagonal()
        num_videos = int(counts.sum())
        readable = num_videos - len(self.skipped)
        present = counts > 0
        per_class_acc = torch.where(present, correct / counts.clamp(min=1), torch.zeros(()))
        return {
            "top1": _frac(int(correct.sum()), num_videos),
            "top5": _frac(self.topk_correct, num_videos),  # top-min(5, K)
            "mean_class_acc": float(per_class_acc[present].mean()) if present.any() else 0.0,
            "clip_top1": _frac(self.view_correct, self.num_views),
            "nll": self.nll_sum / readable if readable else None,
            "num_videos": num_videos,
            "num_views": self.num_views,
            "num_skipped": len(self.skipped),
            "skipped": list(self.skipped),
            "notes": dict(self.notes),
            "classes": list(self.classes),
            "per_class": {
                name: {"top1": float(per_class_acc[i]) if present[i] else None, "num_videos": int(counts[i]),
                       "correct": int(correct[i]), "unreadable": int(self.confusion[i, -1])}
                for i, name in enumerate(self.classes)
            },
            "confusion": self.confusion.tolist(),
            "confusion_columns": [*self.classes, UNREADABLE],
            "videos": list(self.videos),
        }


def _frac(num: int, den: int) -> float:
    return num / den if den else 0.0


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: Iterable[Mapping[str, Any]],
    num_classes: int,
    *,
    classes: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    views_per_forward: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Score every video of ``loader`` and return the metrics (see the module docstring and :class:`ScoreTally`).

    ``loader`` yields collated batches (``vidrcnn.data.datasets.collate``): ``video`` float ``(B, C, T, H, W)`` or
    ``(B, N, C, T, H, W)`` for N views per video, ``label``, and optionally ``ok`` and ``path``. The N views are folded
    into the batch for the forward pass, ``views_per_forward`` at a time when given (bounds memory for 10 clips x 3
    crops). Keys of the result: ``top1``, ``top5``, ``mean_class_acc``, ``clip_top1``, ``nll``, ``num_videos``,
    ``num_views``, ``skipped``, ``classes``, ``per_class``, ``confusion``, ``confusion_columns``, ``videos``.
    """
    model.eval()
    tally = ScoreTally(num_classes, classes)
    batches = loader
    if progress:
        batches = tqdm(loader, desc="test", unit="batch", file=sys.stderr, disable=None)
    for batch in batches:
        video = batch["video"]
        if video.dim() == 5:
            video = video[:, None]
        b, n = video.shape[:2]
        flat = rearrange(video, "b n c t h w -> (b n) c t h w")
        step = views_per_forward or flat.shape[0]
        logits = torch.cat([model(flat[i : i + step].to(device)).float().cpu() for i in range(0, flat.shape[0], step)])
        if logits.shape != (b * n, num_classes):
            raise ValueError(f"model returned logits {tuple(logits.shape)}, expected {(b * n, num_classes)}")
        probs = rearrange(logits.softmax(-1), "(b n) k -> b n k", b=b, n=n)
        tally.update(probs, batch["label"], batch.get("ok"), batch.get("path"), batch.get("notes"))
    result = tally.result()
    if result["num_videos"] and result["num_skipped"] == result["num_videos"]:
        raise DatasetError(result["skipped"][0] if result["skipped"] else None,
                           f"unreadable, as are all {result['num_videos']} test videos: there is no result to report")
    return result


PREPROCESS_KEYS = ("num_frames", "stride", "sampling", "size", "resize")


class TestSetup(NamedTuple):
    """What :func:`prepare_test` returns: everything needed to score a checkpoint on its test split."""

    model: nn.Module  # in eval mode, on ``device``
    classes: list[str]
    loader: Iterable[Mapping[str, Any]]  # collated batches of the test split, in the order of the split
    cfg: Any  # the resolved Config (the checkpoint's, with the overrides)
    protocol: dict[str, Any]
    meta: dict[str, Any]  # checkpoint, model_name, epoch, weights ("ema" or "raw")
    device: str


def prepare_test(
    checkpoint: str | os.PathLike,
    overrides: Sequence[str] = (),
    *,
    device: str = "auto",
    weights: str | None = None,
) -> TestSetup:
    """Load ``checkpoint`` and build its test loader with the multi-clip protocol (see :func:`evaluate_checkpoint`).

    ``weights``: ``"ema"`` or ``"raw"``; None takes the checkpoint's default (the EMA when it has one)."""
    device = resolve_device(device)  # a GPU that is not there fails before anything is loaded

    path = os.fspath(checkpoint)
    ckpt = load_checkpoint(path)
    missing = [k for k in ("model", "model_name", "num_classes", "classes", "preprocess", "config") if k not in ckpt]
    if missing:
        raise CheckpointError(path, f"not a vidrcnn training checkpoint (missing {', '.join(missing)})")
    _check_test_overrides(overrides, path)
    cfg = checkpoint_config(ckpt["config"], overrides, where=path)
    if cfg.eval.cuda_graph and torch.device(device).type != "cuda":
        raise ConfigError("eval.cuda_graph", f"replays CUDA graphs, and this test runs on the {device}: use --device "
                                             "cuda, or leave eval.cuda_graph off")
    pre = dict(ckpt["preprocess"])
    overridden = {text.partition("=")[0].strip() for text in overrides}
    pre.update({k: getattr(cfg.data, k) for k in PREPROCESS_KEYS if f"data.{k}" in overridden})
    try:
        which = checkpoint_weights(ckpt, weights)[0]
        model = model_from_checkpoint(ckpt, weights=which)
    except CheckpointError as exc:
        raise CheckpointError(path, exc.cause) from None
    classes = [str(c) for c in ckpt["classes"]]

    split = build_split(cfg.data.root, split_dir=cfg.data.split_dir, split=cfg.data.split, list_file=cfg.data.list_file,
                        classes_file=cfg.data.classes_file)
    if list(split.classes) != classes:
        raise DatasetError(cfg.data.root, f"the dataset's {len(split.classes)} classes differ from the "
                           f"{len(classes)} the checkpoint {path} was trained on")
    overlap = training_overlap(ckpt, split.test, cfg.data.root)
    if overlap:
        raise DatasetError(cfg.data.root, f"{len(overlap)} of the {len(split.test)} test videos (e.g. {overlap[0]}) "
                           f"are among the videos the checkpoint {path} was trained on (data.split="
                           f"{cfg.data.split} here); a test result on them would be false: test on the split it was "
                           "not trained on")
    transform = build_transform(train=False, size=int(pre["size"]), resize=pre.get("resize"),
                                three_crop=cfg.eval.three_crop,
                                **{k: pre[k] for k in ("mean", "std") if pre.get(k) is not None})
    dataset = VideoClipDataset(split.test, num_frames=int(pre["num_frames"]), stride=int(pre.get("stride") or 1),
                               sampling=pre.get("sampling") or "dense", train=False, transform=transform,
                               num_clips=cfg.eval.num_clips, backend=cfg.data.backend)
    loader = DataLoader(dataset, batch_size=cfg.eval.batch_size, shuffle=False, num_workers=cfg.data.num_workers,
                        collate_fn=collate)
    protocol = {"num_clips": cfg.eval.num_clips, "three_crop": cfg.eval.three_crop, "split": cfg.data.split,
                "data_root": cfg.data.root, **{k: pre.get(k) for k in PREPROCESS_KEYS},
                # None: the checkpoint predates the record of its training videos, so overlap was not checked
                "checked_against_training_videos": "train_videos" in ckpt}
    if "train_videos" not in ckpt:
        log.warning("%s does not record its training videos (saved by an older vidrcnn): cannot check that the test "
                    "set is held out", path)
    meta = {"checkpoint": path, "model_name": ckpt["model_name"], "epoch": ckpt.get("epoch"), "weights": which}
    model = model.to(device).eval()
    fold_batch_norms(model)  # as tools/infer.py: one kernel fewer per BatchNorm, the same outputs up to rounding
    return TestSetup(model, classes, loader, cfg, protocol, meta, device)


# The overrides that change what tools/test.py does: where the data is and how it is read, the test protocol, and
# how many clips go through the model at once. The model, optimiser and training keys cannot apply to a trained
# checkpoint (its weights and builder options are fixed), so giving one is refused rather than silently ignored.
TEST_OVERRIDES = ("data.", "eval.", "train.batch_size")
NOT_AT_TEST = ("data.flip", "data.on_error", "data.repeats")


def _check_test_overrides(overrides: Sequence[str], where: str) -> None:

    keys = [text.partition("=")[0].strip() for text in overrides]
    refused = [k for k in keys if not k.startswith(TEST_OVERRIDES) or k in NOT_AT_TEST]
    if refused:
        raise ConfigError(where, f"{', '.join(refused)} cannot apply when testing a trained checkpoint (its model "
                                 f"and training are fixed); test overrides are data.* (not {', '.join(NOT_AT_TEST)}), "
                                 "eval.* and train.batch_size")


def relative_videos(samples: Sequence[tuple[str, int]], root: str | os.PathLike) -> list[str]:
    """The sorted paths of ``samples`` relative to the dataset ``root`` (what a moved dataset keeps)."""
    return sorted(os.path.relpath(os.path.abspath(p), os.path.abspath(root)) for p, _ in samples)


def training_overlap(ckpt: Mapping[str, Any], test: Sequence[tuple[str, int]], root: str | os.PathLike) -> list[str]:
    """The test videos (relative to ``root``) that the checkpoint records among its training videos."""
    trained = set(ckpt.get("train_videos") or ())
    return [p for p in relative_videos(test, root) if p in trained]


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    overrides: Sequence[str] = (),
    *,
    device: str = "auto",
    progress: bool = False,
    weights: str | None = None,
) -> dict[str, Any]:
    """Evaluate a training checkpoint on its test split with the multi-clip protocol; returns :func:`evaluate`'s dict.

    The checkpoint holds what is needed: weights, classes, preprocessing and the training config (``data.root``,
    ``data.split``...). ``overrides`` (``key=value``, e.g. ``data.root=/data/UCF101``, ``eval.num_clips=10``,
    ``eval.three_crop=true``, ``data.split=2``) go through the config module's parser on top of that config. Clips
    are prepared as in training (``checkpoint["preprocess"]``) unless an override sets one of those ``data.*`` keys.
    ``weights`` (``"ema"``, ``"raw"``, None: the checkpoint's default, the EMA when it has one) picks the weights.
    The result also records ``checkpoint``, ``model_name``, ``epoch``, ``weights`` and the ``protocol`` used.
    """
    setup = prepare_test(checkpoint, overrides, device=device, weights=weights)
    model = GraphedForward(setup.model) if setup.cfg.eval.cuda_graph else setup.model
    # At most a training batch of clips per forward pass: 8 videos x 10 clips x 3 crops would not fit at once.
    result = evaluate(model, setup.loader, len(setup.classes), classes=setup.classes, device=setup.device,
                      views_per_forward=setup.cfg.train.batch_size, progress=progress)
    return {**setup.meta, "protocol": setup.protocol, **result}


def checkpoint_config(config: Mapping[str, Any], overrides: Sequence[str] = (), *, where: str | None = None):
    """The checkpoint's config with ``overrides`` applied by :func:`vidrcnn.engine.config.load_config`.

    The stored config is replayed as ``key=value`` overrides ahead of the user's, so the one parser type-checks
    everything, rejects unknown keys and lets ``model.kwargs.NAME=...`` extend the stored builder options.
    """
    stored = config_to_dict(config_from_dict(dict(config), where=where))  # checks the stored config itself
    replay = []
    for section, values in stored.items():
        items = values.items() if isinstance(values, dict) and section != "seed" else [(None, values)]
        for key, value in items:
            name = section if key is None else f"{section}.{key}"
            replay.append(f"{name}={yaml.safe_dump(value, default_flow_style=True, width=10**9).strip()}"
                          .removesuffix("\n...").removesuffix("..."))
    try:
        return load_config(None, [*replay, *overrides])
    except ConfigError as exc:
        raise ConfigError(where, exc.cause) from None


def accuracy_by_group(per_class: Mapping[str, Mapping[str, Any]], groups: Mapping[str, str]) -> dict[str, float]:
    """Video-weighted top-1 per class group (e.g. ``{"ClassA": "local", ...}`` from the synthetic classes.json).

    ``per_class`` is ``result["per_class"]``; classes missing from ``groups`` are ignored.
    """
    hits: dict[str, int] = {}
    totals: dict[str, int] = {}
    for name, stats in per_class.items():
        group = groups.get(name)
        if group is None:
            continue
        hits[group] = hits.get(group, 0) + int(stats["correct"])
        totals[group] = totals.get(group, 0) + int(stats["num_videos"])
    return {g: _frac(hits[g], totals[g]) for g in sorted(totals)}


def format_table(result: Mapping[str, Any]) -> str:
    """A short human-readable summary of an evaluation result."""
    rows = [
        ("videos", f"{result['num_videos']}" + (f" ({result['num_skipped']} unreadable, counted wrong)"
                                                if result["num_skipped"] else "")),
        ("views per video", f"{result['num_views'] // max(result['num_videos'], 1)}"),
        ("top-1 (video)", f"{100 * result['top1']:.2f}%"),
        ("top-5 (video)", f"{100 * result['top5']:.2f}%"),
        ("mean class acc", f"{100 * result['mean_class_acc']:.2f}%"),
        ("top-1 (clip)", f"{100 * result['clip_top1']:.2f}%"),
    ]
    if result.get("notes"):
        rows.append(("notes", f"{len(result['notes'])} videos (scored, but see below)"))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += [f"note: {path}: {note}" for path, notes in result.get("notes", {}).items() for note in notes]
    return "\n".join(lines)


def write_result(result: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write ``result`` as indented JSON (atomically: a temp file, then a rename)."""
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
