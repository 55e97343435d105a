"""The data of a training run: the datasets (:func:`build_datasets`), the one training DataLoader of each epoch
(:func:`build_train_loader`), the validation loader, what a checkpoint records of the clips' preparation
(:func:`preprocess_of`), and the limit on unreadable training videos (:class:`UnreadableLimit`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

from vidrcnn.data.datasets import VideoClipDataset, collate, collate_repeats
from vidrcnn.data.formats.common import Split
from vidrcnn.data.splits import build_split
from vidrcnn.data.transforms import MEAN, STD, build_transform
from vidrcnn.engine.config import Config, DataConfig
from vidrcnn.engine.distributed import DistInfo, ShardSampler
from vidrcnn.errors import DatasetError, VidrcnnError
from vidrcnn.io import probe_video


def build_datasets(data: DataConfig):
    """(split, train dataset, validation dataset): ``data.repeats`` random clips per training video (one by
    default), the centre clip per test one."""
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
    segment_stride = (max(1, round(video_frames / data.num_frames))
                      if data.sampling == "segments" and video_frames else None)
    return {"num_frames": data.num_frames, "stride": data.stride, "sampling": data.sampling, "size": data.size,
            "resize": data.resize, "mean": list(MEAN), "std": list(STD), "fps": fps, "segment_stride": segment_stride}


@dataclass
class TrainData:
    """A run's data: the split, the datasets, this process's share of each batch and the loaders."""

    split: Split
    train_ds: VideoClipDataset
    val_ds: VideoClipDataset
    sampler: DistributedSampler  # the training order: shuffled per epoch from (seed, epoch), sharded over ranks
    val_loader: DataLoader  # every test video once over all ranks
    per_rank: int  # videos per step in each process
    pin_memory: bool = False

    @property
    def classes(self) -> list[str]:
        return list(self.split.classes)

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch; they count videos (with data.repeats=K a step trains K clips of each)."""
        n = len(self.sampler)
        return n // self.per_rank if drops_last(self.sampler, self.per_rank) else math.ceil(n / self.per_rank)

    @classmethod
    def build(cls, cfg: Config, info: DistInfo) -> TrainData:
        split, train_ds, val_ds = build_datasets(cfg.data)
        per_rank = cfg.train.batch_size // info.world_size
        pin = info.device.type == "cuda"
        val_loader = DataLoader(val_ds, batch_size=per_rank, sampler=ShardSampler(len(val_ds), info.rank,
                                                                                  info.world_size),
                                collate_fn=collate, num_workers=cfg.data.num_workers, pin_memory=pin,
                                persistent_workers=False)
        sampler = DistributedSampler(train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                     seed=cfg.seed)
        return cls(split, train_ds, val_ds, sampler, val_loader, per_rank, pin)

    def train_loader(self, cfg: Config, epoch: int) -> DataLoader:
        """Epoch ``epoch``'s training loader (:func:`build_train_loader`)."""
        return build_train_loader(self.train_ds, self.sampler, cfg.data, per_rank=self.per_rank, seed=cfg.seed,
                                  epoch=epoch, pin_memory=self.pin_memory)

    def ema_bn_loader(self, data: DataConfig) -> DataLoader:
        """The training videos in this epoch's order (set by :meth:`train_loader`), every batch, for the EMA's
        BatchNorm statistics."""
        return DataLoader(self.train_ds, batch_size=self.per_rank, sampler=self.sampler,
                          collate_fn=train_collate(data), num_workers=data.num_workers,
                          pin_memory=self.pin_memory, persistent_workers=False)


def train_collate(data: DataConfig):
    """How training batches are collated: with ``data.repeats`` > 1 each video's K clips side by side."""
    return collate_repeats if data.repeats > 1 else collate


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
    sampler.set_epoch(epoch)
    train_ds.set_epoch(epoch)
    return DataLoader(train_ds, batch_size=per_rank, sampler=sampler, drop_last=drops_last(sampler, per_rank),
                      collate_fn=train_collate(data),
                      generator=torch.Generator().manual_seed(seed + epoch), num_workers=data.num_workers,
                      pin_memory=pin_memory, persistent_workers=False)


class UnreadableLimit:
    """The unreadable training videos a run has met (``seen``), and the check that they stay within
    ``data.max_unreadable`` of the training set."""

    def __init__(self, data: DataConfig, num_videos: int, history: list[dict[str, Any]]):
        self.root, self.num_videos, self.limit = data.root, num_videos, data.max_unreadable * num_videos
        self.max_unreadable = data.max_unreadable
        self.seen: set[str] = {p for m in history for p in m.get("skipped_paths", [])}  # a resumed run's too

    def add(self, paths: list[str]) -> None:
        self.seen.update(paths)

    def check(self, paths: set[str]) -> None:
        """Raise :class:`DatasetError` if ``seen`` with ``paths`` is over the limit."""
        bad = self.seen | paths
        if len(bad) > self.limit:
            raise DatasetError(self.root, f"{len(bad)} of the {self.num_videos} training videos "
                               f"({100 * len(bad) / self.num_videos:.1f}%) are unreadable, more than "
                               f"data.max_unreadable={self.max_unreadable:g} allows (e.g. {min(bad)}); check the "
                               "dataset with tools/scan_videos.py, or raise the limit")


def train_video_stats(samples, probes: int = 8) -> tuple[float | None, int | None]:
    """Frame rate and median frame count of the first few readable training videos, spread over the list (inference
    rescales the stride for other frame rates, and spaces a segments model's frames as training did)."""
    fps, counts = None, []
    for path, _ in samples[:: max(1, len(samples) // probes)][:probes]:
        try:
            info = probe_video(path)
        except VidrcnnError:
            continue
        fps = fps or float(info.fps)
        counts.append(int(info.num_frames))
    return fps, (sorted(counts)[len(counts) // 2] if counts else None)
