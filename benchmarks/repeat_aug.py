"""Training loader throughput with repeated augmentation (``data.repeats``): clips/s for K = 1, 2, 4.

Figures: docs/guide/training.md, "Training" (``data.repeats``).

    python tools/make_synthetic.py /tmp/syn64 --size 64         # or let the script make a small one (--root omitted)
    python benchmarks/repeat_aug.py --root /tmp/syn64 [--repeats 1,2,4] [--batches 10] [--workers 0] [key=value ...]

Builds the training set and loader as ``engine.train.fit`` does (``build_datasets`` from configs/synthetic.yaml
with ``data.size=64 data.resize=64`` and the overrides, a DistributedSampler of world size 1, ``collate_repeats``
for K > 1) and times ``--batches`` batches of ``train.batch_size`` videos after one warm-up batch. With K repeats
each video is opened and decoded once for K clips (each with its own position and crop/flip), so clips/s should
grow with K while videos/s falls only by the extra transforms. No model runs: this is the data side of a step.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DistributedSampler

from vidrcnn.data.synthetic import make_synthetic
from vidrcnn.engine.config import load_config
from vidrcnn.engine.train import seed_everything
from vidrcnn.engine.train_data import build_datasets, build_train_loader

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "synthetic.yaml"


def loader_rate(cfg, batches: int) -> tuple[float, float, int]:
    """(videos/s, clips/s, batches timed) of the training loader ``cfg`` describes."""
    _, train_ds, _ = build_datasets(cfg.data)
    k = cfg.data.repeats
    sampler = DistributedSampler(train_ds, num_replicas=1, rank=0, shuffle=True, seed=cfg.seed)
    loader = build_train_loader(train_ds, sampler, cfg.data, per_rank=cfg.train.batch_size, seed=cfg.seed, epoch=1)
    seed_everything(cfg.seed)
    it = iter(loader)
    next(it)  # warm-up: worker start, first opens
    clips, timed = 0, 0
    tic = time.perf_counter()
    for batch in it:
        clips += batch["video"].shape[0]
        timed += 1
        if timed == batches:
            break
    seconds = time.perf_counter() - tic
    if not timed:
        raise SystemExit(f"only one batch of {cfg.train.batch_size} videos in the training set: use more videos")
    return clips / k / seconds, clips / seconds, timed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", help="synthetic (UCF101-layout) dataset; default: make a small 64x64 one in a temp dir")
    ap.add_argument("--repeats", default="1,2,4", help="comma list of data.repeats values [%(default)s]")
    ap.add_argument("--batches", type=int, default=10, help="batches timed per K, after one warm-up [%(default)s]")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: decode in this process)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads [%(default)s]")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.batch_size=8")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root is None:  # split 1 trains on groups 8 and up: 12 groups x 2 clips x 11 classes -> 110 train videos
            root = make_synthetic(Path(tmp) / "syn64", num_groups=12, clips_per_group=2, size=64, seed=0)
        base = [f"data.root={root}", "data.size=64", "data.resize=64", f"data.num_workers={args.workers}"]
        print(f"root {root}; {' '.join([*base[1:], *args.overrides])}; {args.batches} batches per K, "
              f"{args.threads} thread(s)")
        ks = [int(v) for v in args.repeats.split(",")]
        print(f"| repeats | videos/s | clips/s | clips/s vs K={ks[0]} |")
        print("|---|---|---|---|")
        first = None
        for k in ks:
            cfg = load_config(CONFIG, [*base, *args.overrides, f"data.repeats={k}"])
            videos_s, clips_s, timed = loader_rate(cfg, args.batches)
            first = first or clips_s
            print(f"| {k} | {videos_s:.1f} | {clips_s:.1f} | {clips_s / first:.2f}x |"
                  + (f" (only {timed} batches)" if timed < args.batches else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
