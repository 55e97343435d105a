"""The UCF101 data path at full UCF101 scale of metadata: 101 classes, 13,320 videos, the official split lists.

    python benchmarks/ucf101_scale.py [--root DIR] [--keep] [--json OUT] [--threads 2] [--clip 8x32x32]

Builds a UCF101-format tree (``<Class>/v_<Class>_gNN_cMM.avi``, 25 groups of 4-7 clips per class, 13,320 videos in
all, every file a hard link to one tiny MPEG-4 AVI) with ``ucfTrainTestlist/`` (``classInd.txt``,
``trainlist0k.txt``, ``testlist0k.txt``, CRLF) as UCF101 ships it; ``HandstandPushups`` is spelled
``HandStandPushups`` on disk, as in UCF101's file names. Then times, one table row each:

- creating the tree (information only);
- ``build_split`` for splits 1, 2 and 3 (train / test entries, classes, checked against the lists written);
- ``build_datasets`` from ``configs/ucf101_rcn_gru_m.yaml`` and the training DataLoader
  (``engine.train.build_train_loader``, what ``fit`` uses)
  (DistributedSampler, world size 1, 2 workers, batch 8) until the first batch arrives;
- constructing ``rcn_gru_m`` (101 classes) and one forward + backward on that batch (CPU);
- a ``ProbeCache`` scan of 500 videos, cold (probing, saved to a file) then warm (a new cache loading that file).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from vidrcnn.data.splits import build_split
from vidrcnn.engine.config import load_config
from vidrcnn.engine.train import seed_everything
from vidrcnn.engine.train_data import build_datasets, build_train_loader
from vidrcnn.io import ProbeCache
from vidrcnn.io.writer import write_video
from vidrcnn.models import get_model

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "ucf101_rcn_gru_m.yaml"
CLASSES = [  # UCF101's classInd.txt, in order
    "ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam", "BandMarching", "BaseballPitch",
    "Basketball", "BasketballDunk", "BenchPress", "Biking", "Billiards", "BlowDryHair", "BlowingCandles",
    "BodyWeightSquats", "Bowling", "BoxingPunchingBag", "BoxingSpeedBag", "BreastStroke", "BrushingTeeth",
    "CleanAndJerk", "CliffDiving", "CricketBowling", "CricketShot", "CuttingInKitchen", "Diving", "Drumming",
    "Fencing", "FieldHockeyPenalty", "FloorGymnastics", "FrisbeeCatch", "FrontCrawl", "GolfSwing", "Haircut",
    "Hammering", "HammerThrow", "HandstandPushups", "HandstandWalking", "HeadMassage", "HighJump", "HorseRace",
    "HorseRiding", "HulaHoop", "IceDancing", "JavelinThrow", "JugglingBalls", "JumpingJack", "JumpRope", "Kayaking",
    "Knitting", "LongJump", "Lunges", "MilitaryParade", "Mixing", "MoppingFloor", "Nunchucks", "ParallelBars",
    "PizzaTossing", "PlayingCello", "PlayingDaf", "PlayingDhol", "PlayingFlute", "PlayingGuitar", "PlayingPiano",
    "PlayingSitar", "PlayingTabla", "PlayingViolin", "PoleVault", "PommelHorse", "PullUps", "Punch", "PushUps",
    "Rafting", "RockClimbingIndoor", "RopeClimbing", "Rowing", "SalsaSpin", "ShavingBeard", "Shotput",
    "SkateBoarding", "Skiing", "Skijet", "SkyDiving", "SoccerJuggling", "SoccerPenalty", "StillRings",
    "SumoWrestling", "Surfing", "Swing", "TableTennisShot", "TaiChi", "TennisSwing", "ThrowDiscus",
    "TrampolineJumping", "Typing", "UnevenBars", "VolleyballSpiking", "WalkingWithDog", "WallPushups",
    "WritingOnBoard", "YoYo",
]
ON_DISK = {"HandstandPushups": "HandStandPushups"}  # the class as spelled by the folder and the file names
NUM_GROUPS, TOTAL_VIDEOS, PROBED = 25, 13_320, 500


class Rows(list):
    """The table: each row is printed as it is added."""

    def add(self, step: str, seconds: float, detail: str) -> None:
        self.append({"step": step, "seconds": seconds, "detail": detail})
        print(f"| {step} | {seconds:.3f} | {detail} |", flush=True)


def clips_per_group(seed: int = 0) -> list[list[int]]:
    """[class][group] -> clip count in 4..7, summing to UCF101's 13,320."""
    rng = random.Random(seed)
    counts = [[rng.randint(4, 7) for _ in range(NUM_GROUPS)] for _ in CLASSES]
    cells = [(c, g) for c in range(len(CLASSES)) for g in range(NUM_GROUPS)]
    while (excess := sum(map(sum, counts)) - TOTAL_VIDEOS) != 0:
        c, g = rng.choice(cells)
        step = -1 if excess > 0 else 1
        if 4 <= counts[c][g] + step <= 7:
            counts[c][g] += step
    return counts


def write_tiny_avi(path: Path, frames: int, height: int, width: int) -> None:
    t, y, x = np.meshgrid(np.arange(frames), np.arange(height), np.arange(width), indexing="ij")
    video = np.stack([(x * 8 + t * 16) % 256, (y * 8) % 256, (x + y + t * 4) % 256], axis=-1).astype(np.uint8)
    write_video(path, video, fps=25.0, codec="mpeg4")


def link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def build_tree(root: Path, clip: tuple[int, int, int]) -> dict[int, tuple[list[str], list[str]]]:
    """Write the tree and the split lists; returns {split: (train lines, test lines)} as listed (no labels)."""
    src = root / ".tiny.avi"
    write_tiny_avi(src, *clip)
    counts = clips_per_group()
    listed: list[tuple[int, str, int]] = []  # (label, list entry, group)
    for label, cls in enumerate(CLASSES):
        disk = ON_DISK.get(cls, cls)
        (root / disk).mkdir(parents=True, exist_ok=True)
        for g in range(1, NUM_GROUPS + 1):
            for c in range(1, counts[label][g - 1] + 1):
                name = f"v_{disk}_g{g:02d}_c{c:02d}.avi"
                link(src, root / disk / name)
                listed.append((label, f"{cls}/{name}", g))  # lists: classInd's folder spelling, the file's own name
    lists = root / "ucfTrainTestlist"
    lists.mkdir(exist_ok=True)
    crlf = {"newline": "\r\n"}
    with open(lists / "classInd.txt", "w", **crlf) as f:
        f.writelines(f"{i} {cls}\n" for i, cls in enumerate(CLASSES, 1))
    splits = {}
    for k in (1, 2, 3):
        tested = range(7 * (k - 1) + 1, 7 * k + 1)
        train = [(entry, label) for label, entry, g in listed if g not in tested]
        test = [entry for _, entry, g in listed if g in tested]
        with open(lists / f"trainlist{k:02d}.txt", "w", **crlf) as f:
            f.writelines(f"{entry} {label + 1}\n" for entry, label in train)
        with open(lists / f"testlist{k:02d}.txt", "w", **crlf) as f:
            f.writelines(f"{entry}\n" for entry in test)
        splits[k] = ([e for e, _ in train], test)
    src.unlink()
    return splits


def timed(fn: Callable):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def check_split(root: Path, split, expected: tuple[list[str], list[str]]) -> str:
    """'ok' if build_split's samples are the listed files (resolved to their on-disk spelling), else what differs."""
    problems = []
    if list(split.classes) != CLASSES:
        problems.append(f"classes differ from classInd: {sorted(set(split.classes) ^ set(CLASSES))[:4]}")
    for name, samples, entries in (("train", split.train, expected[0]), ("test", split.test, expected[1])):
        if len(samples) != len(entries):
            problems.append(f"{name}: {len(samples)} samples for {len(entries)} listed")
        on_disk = [ON_DISK.get(e.split("/")[0], e.split("/")[0]) + e[e.index("/"):] for e in entries]
        got = [os.path.relpath(s.path, root).replace(os.sep, "/") for s in samples]
        if got != on_disk:
            bad = next(((g, e) for g, e in zip(got, on_disk) if g != e), None)
            problems.append(f"{name}: paths differ from the list, first {bad}")
        if any(CLASSES[s.label] != e.split("/")[0] for s, e in zip(samples, entries)):
            problems.append(f"{name}: a label disagrees with its list entry")
    return "; ".join(problems) or "ok"


def first_batch(root: Path, rows: Rows) -> dict:
    cfg = load_config(CONFIG, [f"data.root={root}", f"data.split_dir={root}/ucfTrainTestlist", "data.num_workers=2",
                               "train.batch_size=8"])
    (split, train_ds, val_ds), secs = timed(lambda: build_datasets(cfg.data))
    rows.add("build_datasets (config split 1)", secs,
             f"{len(train_ds)} train / {len(val_ds)} val items, {len(split.classes)} classes")

    t0 = time.perf_counter()
    seed_everything(cfg.seed, 1, 0)  # as fit does for epoch 1, rank 0 of world size 1
    sampler = DistributedSampler(train_ds, num_replicas=1, rank=0, shuffle=True, seed=cfg.seed)
    loader = build_train_loader(train_ds, sampler, cfg.data, per_rank=cfg.train.batch_size, seed=cfg.seed, epoch=1)
    it = iter(loader)
    batch = next(it)
    secs = time.perf_counter() - t0
    del it  # shuts the workers down
    rows.add(f"DataLoader to first batch ({cfg.data.num_workers} workers)", secs,
             f"video {tuple(batch['video'].shape)} {batch['video'].dtype}, {len(loader)} steps/epoch, "
             f"ok {int(batch['ok'].sum())}/{len(batch['ok'])}")
    return batch


def model_step(batch: dict, rows: Rows) -> None:
    torch.manual_seed(0)
    model, secs = timed(lambda: get_model("rcn_gru_m", num_classes=len(CLASSES)))
    params = sum(p.numel() for p in model.parameters())
    rows.add("get_model rcn_gru_m", secs, f"{params / 1e6:.3f}M parameters")
    model.train()
    video, label = batch["video"], batch["label"]
    loss, secs = timed(lambda: _step(model, video, label))
    rows.add("forward+backward on the first batch", secs, f"loss {loss:.3f}, {torch.get_num_threads()} threads")


def _step(model: torch.nn.Module, video: torch.Tensor, label: torch.Tensor) -> float:
    loss = torch.nn.functional.cross_entropy(model(video), label)
    loss.backward()
    return float(loss.detach())


def probe_scan(root: Path, paths: list[str], rows: Rows) -> None:
    cache_file = root / ".probe_cache.json"
    with ProbeCache(cache_file) as cold:
        infos, secs = timed(lambda: [cold.get(p) for p in paths])
    rows.add(f"ProbeCache cold scan of {len(paths)} videos", secs,
             f"hits {cold.hits} misses {cold.misses}, {infos[0].num_frames} frames {infos[0].width}x{infos[0].height}")
    warm, load_secs = timed(lambda: ProbeCache(cache_file))
    _, secs = timed(lambda: [warm.get(p) for p in paths])
    rows.add(f"ProbeCache warm scan of {len(paths)} videos", secs,
             f"hits {warm.hits} misses {warm.misses}, cache file loaded in {load_secs * 1e3:.1f} ms")
    cache_file.unlink()


def run(root: Path, clip: tuple[int, int, int], rows: Rows) -> None:
    expected, secs = timed(lambda: build_tree(root, clip))
    n = len(expected[1][0]) + len(expected[1][1])
    rows.add("create tree", secs, f"{len(CLASSES)} classes, {n} videos, clip {'x'.join(map(str, clip))} (TxHxW)")
    for k in (1, 2, 3):
        split, secs = timed(lambda k=k: build_split(root, split_dir=root / "ucfTrainTestlist", split=k))
        rows.add(f"build_split split={k}", secs, f"{len(split.train)} train / {len(split.test)} test, "
                 f"{len(split.classes)} classes, check: {check_split(root, split, expected[k])}")
    batch = first_batch(root, rows)
    model_step(batch, rows)
    probe_scan(root, [s.path for s in split.train[::len(split.train) // PROBED][:PROBED]], rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, help="build the tree here (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="leave the tree on disk")
    p.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clip", default="8x32x32", help="frames x height x width of the one encoded video")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    clip = tuple(int(v) for v in args.clip.split("x"))
    root = (args.root or Path(tempfile.mkdtemp(prefix="ucf101_scale_"))).resolve()
    if args.root is not None and root.exists() and any(root.iterdir()):
        p.error(f"{root} is not empty")
    root.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, root {root}")
    print("| step | seconds | detail |")
    print("|---|---|---|")
    rows = Rows()
    try:
        run(root, clip, rows)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"root": str(root), "rows": rows}, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
