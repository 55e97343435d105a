"""The training loop: ``fit(cfg, out_dir)`` trains, validates, checkpoints and logs; it reads top to bottom. What a
run carries is a :class:`~vidrcnn.engine.state.TrainState`; its data, :mod:`vidrcnn.engine.train_data`; its folder,
:mod:`vidrcnn.engine.run_dir`; the checkpoint's contents, :mod:`vidrcnn.engine.checkpoint`.

Single process (``python tools/train.py``) or one process per GPU/CPU slot under ``torchrun`` (DistributedDataParallel,
NCCL on GPUs, gloo on CPU). Only rank 0 writes files. Every epoch ends with ``checkpoint_last.pt`` (and
``checkpoint_best.pt`` when the validation top-1 improves), one line of ``metrics.jsonl`` and a redrawn ``curves.png``.

Reproducibility: the model is initialised from ``seed``; each epoch re-seeds torch and ``random`` from (seed, epoch,
rank) and the training sampler shuffles from (seed, epoch). So an epoch depends only on the weights and optimiser
state it starts from, which the checkpoint holds: a run killed at any moment and resumed with ``resume=True`` repeats
at most the interrupted epoch and ends, on CPU, with the same metrics as an uninterrupted run.

Recipe options (:mod:`vidrcnn.engine.recipe`): Mixup/CutMix of each batch (``train.mixup_alpha``,
``train.cutmix_alpha``, ``train.mix_prob``), an EMA of the weights that validation scores and checkpoints store
(``train.ema_decay``), and repeated augmentation, K clips of each decoded video (``data.repeats``).
"""

from __future__ import annotations

import functools
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from vidrcnn.engine import distributed
from vidrcnn.engine.checkpoint import (
    load_checkpoint,
    restore_training,
    run_record,
    save_checkpoint,
    training_checkpoint,
)
from vidrcnn.engine.config import Config, OptimConfig, save_config
from vidrcnn.engine.distributed import SINGLE, DistInfo
from vidrcnn.engine.evaluate import relative_videos
from vidrcnn.engine.logging import RunLog
from vidrcnn.engine.recipe import build_ema, build_mixer, hard_labels, recompute_ema_bn
from vidrcnn.engine.run_dir import BEST, LAST, check_run_dir
from vidrcnn.engine.schedule import Schedule
from vidrcnn.engine.state import TrainState
from vidrcnn.engine.train_data import TrainData, UnreadableLimit, preprocess_of, train_video_stats
from vidrcnn.engine.train_step import GraphedStep, forward_loss, set_lr, update
from vidrcnn.errors import ConfigError, DatasetError, DivergenceError
from vidrcnn.layers import compile_steps
from vidrcnn.models import get_model

log = logging.getLogger(__name__)


MISSING = "missing_videos.txt"  # annotated videos not found, one "<set> <label> <video>" per line (Kinetics)


# -- building blocks ------------------------------------------------------------------------------------------------
def build_optimizer(model: nn.Module, optim: OptimConfig, lr: float, *, capturable: bool = False
                    ) -> torch.optim.Optimizer:
    """AdamW or SGD; weight decay only on weight matrices and conv kernels (dim >= 2), not biases or norm scales.
    ``capturable`` (a CUDA-graph training step): AdamW keeping its step count and learning rate on the GPU."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": optim.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=optim.momentum, nesterov=optim.nesterov)
    if capturable:
        device = next(model.parameters()).device
        return torch.optim.AdamW(groups, lr=torch.tensor(lr, device=device), betas=tuple(optim.betas), capturable=True)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(optim.betas))


def seed_everything(seed: int, epoch: int = 0, rank: int = 0) -> None:
    """Seed torch (CPU and CUDA) and ``random`` from (seed, epoch, rank)."""
    s = (seed * 1_000_003 + epoch * 10_007 + rank) % 2**63
    torch.manual_seed(s)
    random.seed(s)


def _to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    return x.to(device, non_blocking=True, memory_format=fmt)


# -- one epoch ------------------------------------------------------------------------------------------------------
def train_one_epoch(state: TrainState, loader: Iterable[dict[str, Any]], *, epoch: int, desc: str = "",
                    check_unreadable: Callable[[set[str]], None] | None = None) -> dict[str, Any]:
    """One pass over ``loader``, epoch ``epoch`` (1-based) of ``state.schedule``: the learning rate is set before each
    step, the batch mixed by ``state.mixer``, ``state.ema`` updated after each optimiser step.

    ``check_unreadable(paths)`` sees the unreadable videos skipped so far after each batch that skipped one. Returns
    this rank's sums (``loss_sum``, ``correct``, ``clips``, ``steps``), the last ``lr`` and the ``skipped`` paths;
    :func:`fit` reduces them across ranks. Raises :class:`DivergenceError` at the first non-finite loss (on every
    rank at once under DDP, so no process is left waiting).
    """
    s = state
    s.trained.train()
    start = (epoch - 1) * s.schedule.steps_per_epoch
    loss_sum, correct, clips, step, lr = 0.0, 0, 0, start, s.schedule.lr(start)
    skipped: list[str] = []
    bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, disable=not (s.info.is_main and sys.stderr.isatty()))
    for i, batch in enumerate(bar):
        lr = s.schedule.lr(step)
        set_lr(s.optimizer, lr)
        x = _to_device(batch["video"], s.device, s.channels_last)
        y = batch["label"].to(s.device, non_blocking=True)
        if s.mixer is not None:
            x, y = s.mixer(x, y)  # y: soft targets (B, K) when this batch was mixed
            x = _to_device(x, s.device, s.channels_last)
        skipped += batch["skipped"]
        if batch["skipped"] and check_unreadable is not None:
            check_unreadable(set(skipped))
        # train.cuda_graph: the step's update is in the replayed graph, so the loss is checked after it (a run that
        # diverges stops all the same, before the epoch's checkpoint); else before the update.
        logits, loss = (s.graphed_step or functools.partial(forward_loss, s))(x, y)
        if logits.dim() == 3:  # per-step logits: the clip's prediction is the last step's
            logits = logits[:, -1]
        local = loss.item()
        if distributed.all_reduce_sum(torch.tensor([float(not math.isfinite(local))]), s.info).item() > 0:
            what = f"loss is {local}" if not math.isfinite(local) else "loss is not finite on another rank"
            raise DivergenceError(
                f"training diverged: {what} at epoch {epoch}, step {i + 1} (global step {step + 1}, lr {lr:.3g}); "
                "lower train.lr, enable train.clip_grad or check the data"
            )
        if s.graphed_step is None:
            update(s, loss)
        if s.ema is not None:
            s.ema.update_parameters(s.model)
        n = y.shape[0]
        loss_sum += local * n
        correct += int((logits.argmax(1) == hard_labels(y)).sum())
        clips += n
        step += 1
        bar.set_postfix(loss=f"{loss_sum / clips:.3f}", lr=f"{lr:.2e}")
    bar.close()
    return {"loss_sum": loss_sum, "correct": correct, "clips": clips, "steps": step - start, "lr": lr,
            "skipped": skipped}


@torch.no_grad()
def validate(
    model: nn.Module,
    loader: DataLoader,
    *,
    autocast: AbstractContextManager,
    device: torch.device,
    info: DistInfo = SINGLE,
    channels_last: bool = False,
    where: str | None = None,
) -> dict[str, Any]:
    """Clip-level validation: one centre clip per test video, reduced across ranks; a test split with no readable
    video is a :class:`DatasetError` naming ``where`` (the data root).

    ``loader`` must visit every video once over all ranks (:class:`ShardSampler`). An unreadable video (``ok`` False)
    counts as wrong and stays out of the loss. Returns ``val_loss``, ``val_top1``, ``val_count``, ``val_unreadable``.
    """
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # loss sum over readable, correct, videos, unreadable
    for batch in loader:
        x = _to_device(batch["video"], device, channels_last)
        y, ok = batch["label"].to(device), batch["ok"].to(device)
        with autocast:
            logits = model(x).float()
        loss = F.cross_entropy(logits, y, reduction="none")
        sums += torch.tensor([float(loss[ok].sum()), float(((logits.argmax(1) == y) & ok).sum()), len(y),
                              float((~ok).sum())], dtype=torch.float64)
    loss_sum, correct, count, unreadable = distributed.all_reduce_sum(sums, info).tolist()
    readable = count - unreadable
    if count and not readable:  # every rank sees the reduced sums, so all raise together
        raise DatasetError(where, f"all {int(count)} validation (test split) videos are unreadable: no validation "
                                  "loss or accuracy (run tools/scan_videos.py on the dataset)")
    return {"val_loss": loss_sum / readable if readable else float("nan"), "val_top1": correct / count if count else 0.0,
            "val_count": int(count), "val_unreadable": int(unreadable)}


# -- the run --------------------------------------------------------------------------------------------------------
def fit(cfg: Config, out_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train ``cfg`` into ``out_dir``; returns the final epoch's metrics plus ``best_top1`` and ``skipped_videos``.

    ``resume=True`` continues from ``out_dir/checkpoint_last.pt`` (or starts afresh when there is none); without it an
    existing checkpoint there is an error rather than something silently overwritten.
    """
    out_dir, t = Path(out_dir), cfg.train
    info = distributed.setup(t.device)
    try:
        if t.batch_size % info.world_size:
            raise ConfigError(None, f"train.batch_size={t.batch_size} is not divisible by the {info.world_size} "
                                    "processes")
        changes = check_run_dir(cfg, out_dir, resume)
        data = TrainData.build(cfg, info)
        state = build_state(cfg, data, info)
        if resume and (out_dir / LAST).exists():
            restore_training(state, load_checkpoint(out_dir / LAST), out_dir / LAST, model_name=cfg.model.name,
                             classes=data.classes)
            if info.is_main:
                log.info("resuming %s from epoch %d%s", out_dir / LAST, state.epoch, "".join(
                    f"; {k}: {was!r} -> {now!r}" for k, (was, now) in changes.items()))
        if info.distributed:
            state.trained = DistributedDataParallel(
                state.model, device_ids=[info.device.index] if info.device.type == "cuda" else None)
        record = run_record(cfg, classes=data.classes, world_size=info.world_size,
                            preprocess=preprocess_of(cfg.data, *train_video_stats(data.split.train)),
                            train_videos=relative_videos(data.split.train, cfg.data.root))
        run_log = _start_log(cfg, out_dir, state, data) if info.is_main else None
        unreadable = UnreadableLimit(cfg.data, len(data.train_ds), state.history)
        first = state.epoch + 1
        for epoch in range(first, t.epochs + 1):
            metrics = train_and_validate(state, data, cfg, epoch, unreadable)
            if changes and epoch == first:  # the record says what changed when the run was resumed
                metrics["resumed_with"] = {k: list(v) for k, v in changes.items()}
            unreadable.add(metrics["skipped_paths"])
            improved = metrics.get("val_top1", -1.0) > state.best_top1
            state.epoch, state.best_top1 = epoch, max(state.best_top1, metrics.get("val_top1", -1.0))
            metrics["best_top1"] = state.best_top1
            state.history.append(metrics)
            if info.is_main:
                checkpoint = training_checkpoint(state, record, metrics)
                # Best before last: a kill between the two repeats this epoch, which then finds best already written.
                if improved:
                    save_checkpoint(out_dir / BEST, checkpoint)
                save_checkpoint(out_dir / LAST, checkpoint)
                run_log.log_epoch(metrics)
                log.info(_epoch_line(metrics, t.epochs))
        if info.is_main:
            _end_log(run_log, unreadable.seen, len(data.train_ds))
        distributed.barrier(info)
        final = dict(state.history[-1]) if state.history else {}
        final.update(best_top1=state.best_top1, skipped_videos=sorted(unreadable.seen), out_dir=str(out_dir))
        return final
    finally:
        distributed.cleanup()


def build_state(cfg: Config, data: TrainData, info: DistInfo) -> TrainState:
    """The model, initialised from ``cfg.seed``, with what trains it: optimiser, schedule, precision (autocast and a
    grad scaler, on for ``train.amp`` on CUDA), EMA and batch mixing as ``cfg.train`` says."""
    t, device = cfg.train, info.device
    seed_everything(cfg.seed)
    model = get_model(cfg.model.name, num_classes=len(data.classes), **cfg.model.kwargs).to(device)
    channels_last = t.channels_last and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    if t.compile_step:
        compile_steps(model)
    amp = t.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if (amp and torch.cuda.is_bf16_supported()) else torch.float16
    if t.cuda_graph:
        check_cuda_graph(cfg, info, fp16=amp and amp_dtype == torch.float16)
    optimizer = build_optimizer(model, cfg.optim, t.lr, capturable=t.cuda_graph)
    ema = build_ema(model, t.ema_decay)  # a resumed run then restores its average exactly
    if ema is not None and t.compile_step:
        compile_steps(ema)  # a copy runs eagerly until compiled
    state = TrainState(
        model=model, optimizer=optimizer, device=device, info=info, ema=ema, channels_last=channels_last,
        schedule=Schedule(t.lr, data.steps_per_epoch, t.epochs, warmup_epochs=t.warmup_epochs, min_lr=t.min_lr),
        # a captured step must not reuse casts cached by an earlier call
        autocast=torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp, cache_enabled=not t.cuda_graph),
        scaler=torch.amp.GradScaler(device.type, enabled=amp and amp_dtype == torch.float16),
        mixer=build_mixer(num_classes=len(data.classes), mixup_alpha=t.mixup_alpha, cutmix_alpha=t.cutmix_alpha,
                          prob=t.mix_prob),
        clip_grad=t.clip_grad, label_smoothing=t.label_smoothing)
    if t.cuda_graph:
        state.graphed_step = GraphedStep(state)
    return state


def check_cuda_graph(cfg: Config, info: DistInfo, *, fp16: bool) -> None:
    """Refuse ``train.cuda_graph`` where a training step cannot be captured (see :mod:`vidrcnn.engine.train_step`)."""
    why = ("it needs a CUDA device (train.device)" if info.device.type != "cuda" else
           "it runs in one process, not under torchrun (DDP's buckets need their own warm-up)" if info.distributed else
           "it needs optim.name=adamw, whose step runs on the GPU (capturable)" if cfg.optim.name != "adamw" else
           "fp16's grad scaler checks for infinities on the host: use a GPU with bf16, or train.amp=false" if fp16
           else None)
    if why:
        raise ConfigError("train.cuda_graph", f"the training step cannot be captured as a CUDA graph here: {why}")


def train_and_validate(state: TrainState, data: TrainData, cfg: Config, epoch: int,
                       unreadable: UnreadableLimit) -> dict[str, Any]:
    """Epoch ``epoch``: train on this epoch's loader, reduce the sums over the ranks, recompute the EMA's BatchNorm
    statistics, validate when due; returns the epoch's metrics (``metrics.jsonl``'s line)."""
    info, t = state.info, cfg.train
    seed_everything(cfg.seed, epoch, info.rank)
    loader = data.train_loader(cfg, epoch)
    tic = time.perf_counter()
    # the unreadable limit per batch in one process; under torchrun after the epoch, where every rank sees one list
    stats = train_one_epoch(state, loader, epoch=epoch, desc=f"epoch {epoch}/{t.epochs}",
                            check_unreadable=None if info.distributed else unreadable.check)
    sums = distributed.all_reduce_sum(
        torch.tensor([stats["loss_sum"], stats["correct"], stats["clips"]], dtype=torch.float64), info).tolist()
    skipped = sorted({p for paths in distributed.all_gather_objects(stats["skipped"], info) for p in paths})
    seconds = time.perf_counter() - tic
    metrics: dict[str, Any] = {
        "epoch": epoch, "lr": stats["lr"], "train_loss": sums[0] / max(sums[2], 1),
        "train_top1": sums[1] / max(sums[2], 1), "train_clips": int(sums[2]),
        "clips_per_s": sums[2] / seconds if seconds > 0 else 0.0, "seconds": seconds,
        # training seconds so far, this epoch's included and validation excluded: with val_top1, time to accuracy
        "elapsed_s": sum(m["seconds"] for m in state.history) + seconds,
        "skipped": len(skipped), "skipped_paths": skipped,
    }
    if state.ema is not None and t.ema_bn_batches:
        # The EMA's own BatchNorm statistics, from the first batches of this epoch's order (each rank its own).
        metrics["ema_bn_clips"] = recompute_ema_bn(state.ema, data.ema_bn_loader(cfg.data),
                                                   t.ema_bn_batches)
    if epoch % t.eval_every == 0 or epoch == t.epochs:
        # With an EMA, validation (and so checkpoint_best.pt) scores the averaged weights, which tests use.
        metrics.update(validate(state.model if state.ema is None else state.ema.module, data.val_loader,
                                autocast=state.autocast, device=state.device, info=info,
                                channels_last=state.channels_last, where=cfg.data.root),
                       val_weights="raw" if state.ema is None else "ema")
    unreadable.check(set(skipped))
    return metrics


def _start_log(cfg: Config, out_dir: Path, state: TrainState, data: TrainData) -> RunLog:
    """The run folder's config.yaml and log (rank 0), and the run's opening lines."""
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    run_log = RunLog(out_dir, state.history)
    info = state.info
    log.info("%s: %.2fM parameters, %d classes, %d train / %d test videos, %d process(es) on %s, %d steps/epoch",
             cfg.model.name, sum(p.numel() for p in state.model.parameters()) / 1e6, len(data.classes),
             len(data.train_ds), len(data.val_ds), info.world_size, info.device, data.steps_per_epoch)
    if data.split.missing:  # Kinetics: videos gone from the web are normal; say how many, list them, go on
        (out_dir / MISSING).write_text("".join(f"{m}\n" for m in data.split.missing), encoding="utf-8")
        log.warning("%d annotated videos are not on disk (listed in %s); training on the %d found",
                    len(data.split.missing), out_dir / MISSING, len(data.train_ds))
    return run_log


def _end_log(run_log: RunLog, skipped: set[str], num_videos: int) -> None:
    run_log.close()
    if skipped:
        log.warning("%d unreadable training video(s) (%.1f%% of %d) were skipped: %s", len(skipped),
                    100 * len(skipped) / num_videos, num_videos, ", ".join(sorted(skipped)))
    else:
        log.info("no training video was skipped")


def _epoch_line(m: dict[str, Any], epochs: int) -> str:
    line = (f"epoch {m['epoch']}/{epochs}  lr {m['lr']:.2e}  train loss {m['train_loss']:.4f}  "
            f"top1 {m['train_top1']:.3f}")
    if "val_top1" in m:
        line += (f"  |  val{' (ema)' if m.get('val_weights') == 'ema' else ''} loss {m['val_loss']:.4f}  "
                 f"top1 {m['val_top1']:.3f} ({m['val_count']} videos)")
    line += f"  |  {m['clips_per_s']:.1f} clips/s  {m['seconds']:.1f}s"
    return line + (f"  |  skipped {m['skipped']}" if m["skipped"] else "")
