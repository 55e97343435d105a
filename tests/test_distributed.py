"""Distributed training for real: two gloo processes on the CPU under torch.distributed.run.

Checks that the run completes, that only rank 0 writes (one metrics line per epoch, not two), and that validation
scores every test video exactly once across ranks with an odd number of test videos (DistributedSampler would pad
one rank with a repeated video).
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from vidrcnn.data.datasets import collate
from vidrcnn.engine.checkpoint import load_checkpoint, model_from_checkpoint
from vidrcnn.engine.config import load_config
from vidrcnn.engine.distributed import ShardSampler
from vidrcnn.engine.logging import read_metrics
from vidrcnn.engine.train import validate
from vidrcnn.engine.train_data import build_datasets

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["MoveLeft", "MoveRight", "RotateCW", "Still"]


@pytest.mark.parametrize("n, world", [(7, 2), (9, 2), (5, 3), (1, 2), (0, 2)])
def test_shard_sampler_visits_each_index_exactly_once(n, world):
    shards = [list(ShardSampler(n, rank, world)) for rank in range(world)]
    assert sorted(i for s in shards for i in s) == list(range(n))
    assert [len(ShardSampler(n, rank, world)) for rank in range(world)] == [len(s) for s in shards]


@pytest.fixture(scope="module")
def odd_data(tiny_synthetic, tmp_path_factory) -> tuple[Path, Path]:
    """4 classes at 32x32: 23 train videos, 9 test videos (groups 7-8, plus group 6 of the first class)."""
    root = tiny_synthetic
    lists = tmp_path_factory.mktemp("lists_odd")
    (lists / "classInd.txt").write_bytes("".join(f"{i} {c}\r\n" for i, c in enumerate(CLASSES, 1)).encode())
    train, test = [], []
    for label, name in enumerate(CLASSES, 1):
        for group in range(1, 9):
            rel = f"{name}/v_{name}_g{group:02d}_c01.avi"
            tested = group >= 7 or (label == 1 and group == 6)
            (test.append(f"{rel}\r\n") if tested else train.append(f"{rel} {label}\r\n"))
    (lists / "trainlist01.txt").write_bytes("".join(train).encode())
    (lists / "testlist01.txt").write_bytes("".join(test).encode())
    assert (len(train), len(test)) == (23, 9)
    return root, lists


def test_two_process_gloo_run(odd_data, tmp_path):
    root, lists = odd_data
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "tools" / "train.py"), "--out", str(out),
           f"data.root={root}", f"data.split_dir={lists}", "data.size=32", "data.num_frames=4",
           "data.sampling=segments", "data.num_workers=0", "model.name=frame_avg_s", "train.batch_size=8",
           "train.epochs=2", "train.device=cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    history = read_metrics(out / "metrics.jsonl")
    assert [m["epoch"] for m in history] == [1, 2]  # rank 1 wrote nothing (else every line would appear twice)
    for m in history:
        assert m["val_count"] == 9 and m["val_unreadable"] == 0
        # 23 train videos over 2 ranks of 4 clips per step: 12 per rank (one padded), 3 full steps per rank.
        assert m["train_clips"] == 24
        assert 0.0 <= m["val_top1"] <= 1.0 and m["val_top1"] * 9 == pytest.approx(round(m["val_top1"] * 9))
    ckpt = load_checkpoint(out / "checkpoint_last.pt")
    assert ckpt["world_size"] == 2 and ckpt["epoch"] == 2
    assert not any(k.startswith("module.") for k in ckpt["model"])  # saved unwrapped: loads without DDP
    assert proc.stdout.count("done: val top1") == 1  # only rank 0 reports
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == ["checkpoint_best.pt", "checkpoint_last.pt"]

    # The metrics reduced over two ranks are those of one process validating the same weights on the whole test set.
    _, _, val_ds = build_datasets(load_config(out / "config.yaml").data)
    loader = DataLoader(val_ds, batch_size=4, collate_fn=collate)
    alone = validate(model_from_checkpoint(ckpt), loader, autocast=nullcontext(), device=torch.device("cpu"))
    assert alone["val_count"] == 9 and alone["val_top1"] == history[-1]["val_top1"]
    # Other batches and thread counts sum floats in another order: the loss agrees to float32 noise, not bit for bit.
    assert alone["val_loss"] == pytest.approx(history[-1]["val_loss"], rel=1e-3)
