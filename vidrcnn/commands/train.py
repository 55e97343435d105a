"""Train a model: ``python tools/train.py --config CONFIG [--out DIR] [--resume] [key=value ...]``.

Multi-GPU or multi-node: ``torchrun --nproc_per_node=N tools/train.py --config CONFIG ...`` (only rank 0 writes).
Writes into DIR (default ``outputs/<config name>``): config.yaml, metrics.jsonl, curves.png, checkpoint_last.pt and
checkpoint_best.pt. ``--resume`` continues from DIR/checkpoint_last.pt. Keys are listed in docs/guide/config.md.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import yaml


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", help="YAML file with the values that differ from the defaults")
    parser.add_argument("--out", help="run folder (default: outputs/<config name>)")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true",
                        help="continue from OUT/checkpoint_last.pt (refused when there is none: a mistyped --out)")
    resume.add_argument("--resume-if-any", action="store_true",
                        help="continue from OUT/checkpoint_last.pt when there is one, else start a new run there")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. train.lr=3e-4 data.num_workers=0")
    args = parser.parse_args(argv)

    from vidrcnn.engine.config import config_to_dict, load_config

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
        return 0
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    from vidrcnn.engine.train import LAST, fit
    from vidrcnn.errors import CheckpointError

    out = Path(args.out) if args.out else Path("outputs") / (Path(args.config).stem if args.config else "default")
    if (args.resume or args.resume_if_any) and not (out / LAST).is_file():
        if args.resume:
            raise CheckpointError(out, f"no checkpoint to resume ({LAST} is not there): check --out, or pass "
                                       "--resume-if-any to start a new run when there is none")
        if rank == 0:
            print(f"--resume-if-any: no {LAST} in {out}: starting a new run", flush=True)
    final = fit(cfg, out, resume=args.resume or args.resume_if_any)
    if rank == 0:
        print(f"done: val top1 {final.get('val_top1', float('nan')):.4f} (best {final['best_top1']:.4f}), "
              f"{len(final['skipped_videos'])} skipped video(s); checkpoints in {out}")
    return 0
