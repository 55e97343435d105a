"""The training loop: ``fit(cfg, out_dir)`` trains, validates, checkpoints and logs; it reads top to bottom.

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

import logging
import math
import random
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from vidrcnn.engine import distributed
from vidrcnn.engine.checkpoint import DEFAULTS_VERSION, load_checkpoint, save_checkpoint, unwrap_state_dict
from vidrcnn.engine.config import Config, DataConfig, OptimConfig, config_to_dict, save_config
from vidrcnn.engine.distributed import SINGLE, DistInfo, ShardSampler
from vidrcnn.engine.logging import CURVES_FILE, METRICS_FILE, RunLog
from vidrcnn.engine.recipe import (
    VideoMix,
    build_ema,
    build_mixer,
    ema_state,
    hard_labels,
    load_ema_state,
    recompute_ema_bn,
)
from vidrcnn.engine.schedule import lr_at
from vidrcnn.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    DivergenceError,
    OutputError,
    VidrcnnError,
)
from vidrcnn.layers import compile_steps

log = logging.getLogger(__name__)

LAST, BEST = "checkpoint_last.pt", "checkpoint_best.pt"
# What a run writes into its folder; a folder holding anything else is not a run folder (see check_run_dir).
RUN_FILES = frozenset({LAST, BEST, "config.yaml", METRICS_FILE, CURVES_FILE, "tb", "metrics.jsonl.tmp", "curves.tmp.png"})


def _is_run_file(name: str) -> bool:
    """A file training writes, or the temporary file of one that a kill left behind (``.checkpoint_last.pt.*.tmp``)."""
    return name in RUN_FILES or (name.startswith((f".{LAST}.", f".{BEST}.")) and name.endswith(".tmp"))
# Config keys that may differ on --resume by design: more epochs to extend a run, how often to validate, where the
# data now lives, how many loader workers, how many unreadable videos to accept, which device. Anything else would
# make the run's record false.
RESUMABLE_KEYS = ("train.epochs", "train.eval_every", "data.root", "data.split_dir", "data.list_file",
                  "data.classes_file", "data.num_workers", "data.max_unreadable", "train.device")


MISSING = "missing_videos.txt"  # annotated videos not found, one "<set> <label> <video>" per line (Kinetics)


# -- building blocks ------------------------------------------------------------------------------------------------
def build_datasets(data: DataConfig):
    """(split, train dataset, validation dataset): ``data.repeats`` random clips per training video (one by
    default), the centre clip per test one."""
    from vidrcnn.data.datasets import VideoClipDataset
    from vidrcnn.data.splits import build_split
    from vidrcnn.data.transforms import build_transform

    split = build_split(data.root, split_dir=data.split_dir, split=data.split, list_file=data.list_file,
                        classes_file=data.classes_file)
    common = {"num_frames": data.num_frames, "stride": data.stride, "sampling": data.sampling, "backend": data.backend}
    train_tf = build_transform(train=True, size=data.size, resize=data.resize, flip=data.flip)
    val_tf = build_transform(train=False, size=data.size, resize=data.resize)
    train_ds = VideoClipDataset(split.train, train=True, transform=train_tf, on_error=data.on_error,
                                repeats=data.repeats, **common)
    val_ds = VideoClipDataset(split.test, train=False, transform=val_tf, **common)
    return split, train_ds, val_ds


def preprocess_of(data: DataConfig, fps: float | None = None, video_frames: int | None = None) -> dict[str, Any]:
    """What a checkpoint records so test and inference prepare clips exactly as training did.

    ``segment_stride`` (``sampling="segments"`` only): the typical spacing of the frames a TSN clip took in training,
    ``video_frames / num_frames`` for the median training video length; inference on a long video, where segments
    over the whole video would mean nothing, feeds frames that far apart instead.
    """
    from vidrcnn.data.transforms import MEAN, STD

    segment_stride = (max(1, round(video_frames / data.num_frames))
                      if data.sampling == "segments" and video_frames else None)
    return {"num_frames": data.num_frames, "stride": data.stride, "sampling": data.sampling, "size": data.size,
            "resize": data.resize, "mean": list(MEAN), "std": list(STD), "fps": fps, "segment_stride": segment_stride}


def build_optimizer(model: nn.Module, optim: OptimConfig, lr: float) -> torch.optim.Optimizer:
    """AdamW or SGD; weight decay only on weight matrices and conv kernels (dim >= 2), not biases or norm scales."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": optim.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=optim.momentum, nesterov=optim.nesterov)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(optim.betas))


def seed_everything(seed: int, epoch: int = 0, rank: int = 0) -> None:
    """Seed torch (CPU and CUDA) and ``random`` from (seed, epoch, rank)."""
    s = (seed * 1_000_003 + epoch * 10_007 + rank) % 2**63
    torch.manual_seed(s)
    random.seed(s)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    return x.to(device, non_blocking=True, memory_format=fmt)


def clip_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of clip logits ``(B, K)``, or of per-step logits ``(B, T, K)`` (a model that puts its loss on
    every step in training, e.g. ``head="steps"``) averaged over all steps, each step with the clip's target.

    ``targets``: labels ``(B,)``, or soft targets ``(B, K)`` (Mixup/CutMix), which label smoothing smooths too."""
    if logits.dim() == 3:
        t = logits.shape[1]
        return F.cross_entropy(logits.flatten(0, 1), targets.repeat_interleave(t, dim=0),
                               label_smoothing=label_smoothing)
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)


# -- one epoch ------------------------------------------------------------------------------------------------------
def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    *,
    epoch: int,
    start_step: int,
    lr_fn: Callable[[int], float],
    scaler: torch.amp.GradScaler,
    autocast: AbstractContextManager,
    device: torch.device,
    info: DistInfo = SINGLE,
    clip_grad: float = 0.0,
    check_unreadable: Callable[[set[str]], None] | None = None,
    label_smoothing: float = 0.0,
    channels_last: bool = False,
    mixer: VideoMix | None = None,
    ema: AveragedModel | None = None,
    desc: str = "",
) -> dict[str, Any]:
    """One pass over ``loader``. ``lr_fn(global_step)`` sets the learning rate before each step.

    ``mixer`` mixes each batch (soft targets; the train top-1 counts the dominant label); ``ema``, an average of the
    unwrapped model, is updated after each optimiser step.

    Returns this rank's sums (``loss_sum``, ``correct``, ``clips``, ``steps``), the last ``lr`` and the ``skipped``
    paths; :func:`fit` reduces them across ranks. Raises :class:`DivergenceError` at the first non-finite loss (on
    every rank at once under DDP, so no process is left waiting).
    """
    model.train()
    loss_sum, correct, clips, step, lr = 0.0, 0, 0, start_step, lr_fn(start_step)
    skipped: list[str] = []
    bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, disable=not (info.is_main and sys.stderr.isatty()))
    for i, batch in enumerate(bar):
        lr = lr_fn(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = _to_device(batch["video"], device, channels_last)
        y = batch["label"].to(device, non_blocking=True)
        if mixer is not None:
            x, y = mixer(x, y)  # y: soft targets (B, K) when this batch was mixed
            x = _to_device(x, device, channels_last)
        skipped += batch["skipped"]
        if batch["skipped"] and check_unreadable is not None:
            check_unreadable(set(skipped))
        with autocast:
            logits = model(x)
            loss = clip_loss(logits.float(), y, label_smoothing)
        if logits.dim() == 3:  # per-step logits: the clip's prediction is the last step's
            logits = logits[:, -1]
        local = loss.item()
        if distributed.all_reduce_sum(torch.tensor([float(not math.isfinite(local))]), info).item() > 0:
            what = f"loss is {local}" if not math.isfinite(local) else "loss is not finite on another rank"
            raise DivergenceError(
                f"training diverged: {what} at epoch {epoch}, step {i + 1} (global step {step + 1}, lr {lr:.3g}); "
                "lower train.lr, enable train.clip_grad or check the data"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if clip_grad > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        scaler.step(optimizer)
        scaler.update()
        if ema is not None:
            ema.update_parameters(model.module if isinstance(model, DistributedDataParallel) else model)
        n = y.shape[0]
        loss_sum += local * n
        correct += int((logits.argmax(1) == hard_labels(y)).sum())
        clips += n
        step += 1
        bar.set_postfix(loss=f"{loss_sum / clips:.3f}", lr=f"{lr:.2e}")
    bar.close()
    return {"loss_sum": loss_sum, "correct": correct, "clips": clips, "steps": step - start_step, "lr": lr,
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
def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The dotted keys whose values differ between two :func:`config_to_dict` trees, as ``{key: (old, new)}``."""
    a, b = _flat(old), _flat(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _same_config(cfg: Config, out_dir: Path) -> bool:
    """Whether ``out_dir/config.yaml`` is this very config (a run killed before its first checkpoint)."""
    from vidrcnn.engine.config import load_config

    try:
        return load_config(out_dir / "config.yaml") == cfg
    except (VidrcnnError, OSError):
        return False


def check_run_dir(cfg: Config, out_dir: Path, resume: bool) -> dict[str, tuple[Any, Any]]:
    """Refuse, before any work and before anything is written, a run folder that training must not write into.

    Without ``resume`` the folder must be missing or empty (an existing run is continued with ``--resume``, never
    restarted over). With ``resume`` and a checkpoint there, the resolved config must equal the checkpoint's except
    :data:`RESUMABLE_KEYS`; the allowed changes are returned (and recorded in the next line of ``metrics.jsonl``).
    With ``resume`` and no checkpoint, the folder may hold only a run's own files (:data:`RUN_FILES`, and a
    ``config.yaml`` only when it is this same config).
    """
    last = out_dir / LAST
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(out_dir, "is a file, not a run folder")
    entries = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else []
    if not resume:
        if last.exists():
            raise CheckpointError(last, "a run already exists here; pass --resume to continue it or choose another "
                                        "--out")
        if entries:
            raise OutputError(out_dir, f"is not empty ({', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''}"
                                       "); choose another --out (a training run starts in an empty folder)")
        return {}
    if not last.exists():
        foreign = [e for e in entries if not _is_run_file(e) or (e == "config.yaml" and not _same_config(cfg, out_dir))]
        if foreign:
            raise OutputError(out_dir, f"has no checkpoint to resume and holds files that are not a run's "
                                       f"({', '.join(foreign[:3])}); choose another --out")
        return {}
    ckpt = load_checkpoint(last)
    old = ckpt.get("config") or {}
    changes = config_changes(old, config_to_dict(cfg))
    # A key the checkpoint's config lacks (added to vidrcnn after the run started) is no change at its default.
    default, recorded = _flat(config_to_dict(Config())), _flat(old)
    changes = {k: v for k, v in changes.items() if k in recorded or k not in default or v[1] != default[k]}
    refused = {k: v for k, v in changes.items() if k not in RESUMABLE_KEYS}
    if refused:
        listed = ", ".join(f"{k} ({was!r} -> {now!r})" for k, (was, now) in refused.items())
        raise ConfigError(last, f"--resume with a config that differs from the run's: {listed}; only "
                                f"{', '.join(RESUMABLE_KEYS)} may change on resume (start a new run with another "
                                "--out for anything else)")
    return changes


def fit(cfg: Config, out_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train ``cfg`` into ``out_dir``; returns the final epoch's metrics plus ``best_top1`` and ``skipped_videos``.

    ``resume=True`` continues from ``out_dir/checkpoint_last.pt`` (or starts afresh when there is none); without it an
    existing checkpoint there is an error rather than something silently overwritten.
    """
    from vidrcnn.models import get_model

    out_dir = Path(out_dir)
    info = distributed.setup(cfg.train.device)
    try:
        return _fit(cfg, out_dir, resume, info, get_model)
    finally:
        distributed.cleanup()


def drops_last(sampler: DistributedSampler, per_rank: int) -> bool:
    """Batch norm cannot train on a batch of one: the ragged last batch is dropped unless it is the only one."""
    return len(sampler) > per_rank


def build_train_loader(train_ds, sampler: DistributedSampler, data: DataConfig, *, per_rank: int, seed: int,
                       epoch: int, pin_memory: bool = False) -> DataLoader:
    """The training DataLoader of one epoch, the one place it is built (``fit`` and the benchmarks that measure it).

    ``sampler`` (a ``DistributedSampler`` of ``train_ds``, one per run) and ``train_ds`` are set to ``epoch``; the
    ragged last batch is dropped as :func:`drops_last` says; with
    ``data.repeats > 1`` each video gives K clips (``collate_repeats``); the shuffling generator is seeded by
    ``seed + epoch``, so that an epoch draws the same clips however the run was stopped and resumed.
    """
    from vidrcnn.data.datasets import collate, collate_repeats

    sampler.set_epoch(epoch)
    train_ds.set_epoch(epoch)
    return DataLoader(train_ds, batch_size=per_rank, sampler=sampler, drop_last=drops_last(sampler, per_rank),
                      collate_fn=collate_repeats if data.repeats > 1 else collate,
                      generator=torch.Generator().manual_seed(seed + epoch), num_workers=data.num_workers,
                      pin_memory=pin_memory, persistent_workers=False)


def _fit(cfg: Config, out_dir: Path, resume: bool, info: DistInfo, get_model) -> dict[str, Any]:
    t, device = cfg.train, info.device
    if t.batch_size % info.world_size:
        raise ConfigError(None, f"train.batch_size={t.batch_size} is not divisible by the {info.world_size} processes")
    last_path = out_dir / LAST
    changes = check_run_dir(cfg, out_dir, resume)
    # Data.
    split, train_ds, val_ds = build_datasets(cfg.data)
    classes = list(split.classes)
    per_rank = t.batch_size // info.world_size
    train_sampler = DistributedSampler(train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                       seed=cfg.seed)
    workers = cfg.data.num_workers
    loader_kw = {"num_workers": workers, "pin_memory": device.type == "cuda", "persistent_workers": False}
    from vidrcnn.data.datasets import collate, collate_repeats

    train_collate = collate_repeats if cfg.data.repeats > 1 else collate  # repeats: K clips of each video, (k b)
    val_loader = DataLoader(val_ds, batch_size=per_rank, sampler=ShardSampler(len(val_ds), info.rank, info.world_size),
                            collate_fn=collate, **loader_kw)
    # Steps count videos: with data.repeats=K each step trains on K clips of each of its per_rank videos.
    drop_last = drops_last(train_sampler, per_rank)
    steps_per_epoch = len(train_sampler) // per_rank if drop_last else math.ceil(len(train_sampler) / per_rank)

    # Model, optimiser, precision.
    seed_everything(cfg.seed)
    model = get_model(cfg.model.name, num_classes=len(classes), **cfg.model.kwargs).to(device)
    channels_last = t.channels_last and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    if t.compile_step:
        compile_steps(model)
    optimizer = build_optimizer(model, cfg.optim, t.lr)
    amp = t.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if (amp and torch.cuda.is_bf16_supported()) else torch.float16
    autocast = torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and amp_dtype == torch.float16)
    total_steps = t.epochs * steps_per_epoch
    warmup_steps = round(t.warmup_epochs * steps_per_epoch)

    def lr_fn(step: int) -> float:
        return lr_at(step, base_lr=t.lr, total_steps=total_steps, warmup_steps=warmup_steps, min_lr=t.min_lr)

    mixer = build_mixer(num_classes=len(classes), mixup_alpha=t.mixup_alpha, cutmix_alpha=t.cutmix_alpha,
                        prob=t.mix_prob)

    # Resume.
    start_epoch, best_top1, history, ckpt = 1, -1.0, [], None
    if resume and last_path.exists():
        ckpt = load_checkpoint(last_path)
        if ckpt.get("model_name") != cfg.model.name or list(ckpt.get("classes", [])) != classes:
            raise CheckpointError(last_path, f"holds a {ckpt.get('model_name')!r} model for other classes or another "
                                             f"model than this config's {cfg.model.name!r}")
        model.load_state_dict(unwrap_state_dict(ckpt["model"]))
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        start_epoch, best_top1, history = int(ckpt["epoch"]) + 1, float(ckpt["best_top1"]), list(ckpt["history"])
        if info.is_main:
            log.info("resuming %s from epoch %d%s", last_path, start_epoch - 1, "".join(
                f"; {k}: {was!r} -> {now!r}" for k, (was, now) in changes.items()))
    ema = build_ema(model, t.ema_decay)  # a copy of the (resumed) weights; a resumed run restores its average exactly
    if ema is not None and t.compile_step:
        compile_steps(ema)  # a copy runs eagerly until compiled
    if ema is not None and ckpt is not None:
        load_ema_state(ema, ckpt, last_path)
    raw_model = model
    if info.distributed:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    fps, video_frames = _train_video_stats(split.train)
    from vidrcnn.engine.evaluate import relative_videos

    train_videos = relative_videos(split.train, cfg.data.root)
    run_log = None
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.yaml")
        run_log = RunLog(out_dir, history)
        n_params = sum(p.numel() for p in raw_model.parameters())
        log.info("%s: %.2fM parameters, %d classes, %d train / %d test videos, %d process(es) on %s, %d steps/epoch",
                 cfg.model.name, n_params / 1e6, len(classes), len(train_ds), len(val_ds), info.world_size, device,
                 steps_per_epoch)
        if split.missing:  # Kinetics: videos gone from the web are normal; say how many, list them, go on
            (out_dir / MISSING).write_text("".join(f"{m}\n" for m in split.missing), encoding="utf-8")
            log.warning("%d annotated videos are not on disk (listed in %s); training on the %d found",
                        len(split.missing), out_dir / MISSING, len(train_ds))

    all_skipped: set[str] = {p for m in history for p in m.get("skipped_paths", [])}
    limit = cfg.data.max_unreadable * len(train_ds)

    def check_unreadable(paths: set[str]) -> None:
        bad = all_skipped | paths
        if len(bad) > limit:
            raise DatasetError(cfg.data.root, f"{len(bad)} of the {len(train_ds)} training videos "
                               f"({100 * len(bad) / len(train_ds):.1f}%) are unreadable, more than data.max_unreadable="
                               f"{cfg.data.max_unreadable:g} allows (e.g. {min(bad)}); check the dataset with "
                               "tools/scan_videos.py, or raise the limit")
    for epoch in range(start_epoch, t.epochs + 1):
        seed_everything(cfg.seed, epoch, info.rank)
        train_loader = build_train_loader(train_ds, train_sampler, cfg.data, per_rank=per_rank, seed=cfg.seed,
                                          epoch=epoch, pin_memory=device.type == "cuda")
        tic = time.perf_counter()
        stats = train_one_epoch(
            model, train_loader, optimizer, epoch=epoch, start_step=(epoch - 1) * steps_per_epoch, lr_fn=lr_fn,
            scaler=scaler, autocast=autocast, device=device, info=info, clip_grad=t.clip_grad,
            label_smoothing=t.label_smoothing, channels_last=channels_last, mixer=mixer, ema=ema,
            desc=f"epoch {epoch}/{t.epochs}",
            # per batch in one process; under torchrun after the epoch, where every rank sees the same list
            check_unreadable=None if info.distributed else check_unreadable,
        )
        sums = distributed.all_reduce_sum(
            torch.tensor([stats["loss_sum"], stats["correct"], stats["clips"]], dtype=torch.float64), info).tolist()
        skipped = sorted({p for paths in distributed.all_gather_objects(stats["skipped"], info) for p in paths})
        seconds = time.perf_counter() - tic
        metrics: dict[str, Any] = {
            "epoch": epoch, "lr": stats["lr"], "train_loss": sums[0] / max(sums[2], 1),
            "train_top1": sums[1] / max(sums[2], 1), "train_clips": int(sums[2]),
            "clips_per_s": sums[2] / seconds if seconds > 0 else 0.0, "seconds": seconds,
            "skipped": len(skipped), "skipped_paths": skipped,
        }
        if changes and epoch == start_epoch:  # the record says what changed when the run was resumed
            metrics["resumed_with"] = {k: list(v) for k, v in changes.items()}
        if ema is not None and t.ema_bn_batches:
            # The EMA's own BatchNorm statistics, from the first batches of this epoch's order (each rank its own).
            metrics["ema_bn_clips"] = recompute_ema_bn(ema, DataLoader(
                train_ds, batch_size=per_rank, sampler=train_sampler, collate_fn=train_collate, **loader_kw),
                t.ema_bn_batches)
        if epoch % t.eval_every == 0 or epoch == t.epochs:
            # With an EMA, validation (and so checkpoint_best.pt) scores the averaged weights, which tests use.
            metrics.update(validate(raw_model if ema is None else ema.module, val_loader, autocast=autocast,
                                    device=device, info=info, channels_last=channels_last, where=cfg.data.root),
                           val_weights="raw" if ema is None else "ema")
        check_unreadable(set(skipped))
        all_skipped.update(skipped)
        improved = metrics.get("val_top1", -1.0) > best_top1
        best_top1 = max(best_top1, metrics.get("val_top1", -1.0))
        metrics["best_top1"] = best_top1
        history.append(metrics)
        if info.is_main:
            state = {
                "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": {"name": "warmup_cosine", "step": epoch * steps_per_epoch, "total_steps": total_steps,
                              "warmup_steps": warmup_steps},
                "scaler": scaler.state_dict(), "epoch": epoch, "config": config_to_dict(cfg),
                "model_name": cfg.model.name, "num_classes": len(classes), "classes": classes,
                "defaults_version": DEFAULTS_VERSION,  # which builder defaults the unnamed options took
                "preprocess": preprocess_of(cfg.data, fps, video_frames), "best_top1": best_top1, "metrics": metrics,
                "history": history, "rng": rng_state(), "world_size": info.world_size,
                # what tools/test.py checks a test set against (relative to data.root: a moved dataset still matches)
                "train_videos": train_videos,
                **ema_state(ema),  # the averaged weights beside the raw ones, and which of them tests use
            }
            # Best before last: a kill between the two repeats this epoch, which then finds best already written.
            if improved:
                save_checkpoint(out_dir / BEST, state)
            save_checkpoint(last_path, state)
            run_log.log_epoch(metrics)
            log.info(_epoch_line(metrics, t.epochs))
    if info.is_main:
        if run_log is not None:
            run_log.close()
        if all_skipped:
            log.warning("%d unreadable training video(s) (%.1f%% of %d) were skipped: %s", len(all_skipped),
                        100 * len(all_skipped) / len(train_ds), len(train_ds), ", ".join(sorted(all_skipped)))
        else:
            log.info("no training video was skipped")
    distributed.barrier(info)
    final = dict(history[-1]) if history else {}
    final.update(best_top1=best_top1, skipped_videos=sorted(all_skipped), out_dir=str(out_dir))
    return final


def _train_video_stats(samples, probes: int = 8) -> tuple[float | None, int | None]:
    """Frame rate and median frame count of the first few readable training videos, spread over the list (inference
    rescales the stride for other frame rates, and spaces a segments model's frames as training did)."""
    from vidrcnn.io import probe_video

    fps, counts = None, []
    for path, _ in samples[:: max(1, len(samples) // probes)][:probes]:
        try:
            info = probe_video(path)
        except VidrcnnError:
            continue
        fps = fps or float(info.fps)
        counts.append(int(info.num_frames))
    return fps, (sorted(counts)[len(counts) // 2] if counts else None)


def _epoch_line(m: dict[str, Any], epochs: int) -> str:
    line = (f"epoch {m['epoch']}/{epochs}  lr {m['lr']:.2e}  train loss {m['train_loss']:.4f}  "
            f"top1 {m['train_top1']:.3f}")
    if "val_top1" in m:
        line += (f"  |  val{' (ema)' if m.get('val_weights') == 'ema' else ''} loss {m['val_loss']:.4f}  "
                 f"top1 {m['val_top1']:.3f} ({m['val_count']} videos)")
    line += f"  |  {m['clips_per_s']:.1f} clips/s  {m['seconds']:.1f}s"
    return line + (f"  |  skipped {m['skipped']}" if m["skipped"] else "")
