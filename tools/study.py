"""The comparison study: train every family on the synthetic dataset over 3 seeds and write docs/results.md.

    python tools/study.py                                   # what `make study` runs (about 30 minutes on 2 CPU cores)
    python tools/study.py --models rcn_gru_s,frame_avg_s --seeds 0 --doc /tmp/results.md   # a subset

Generates the dataset into OUT/synthetic when it is not there, trains each (model, seed) into OUT/<model>/seed<k>
with configs/synthetic_<model>.yaml, and writes the report with its plots (next to it, in img/). Each run's result is
kept, so running the command again continues a stopped study; delete OUT to start afresh.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path

from vidrcnn.cli import run_tool


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    from vidrcnn import study

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/study", help="runs and the generated dataset [%(default)s]")
    parser.add_argument("--data", help="an existing synthetic dataset to use instead of OUT/synthetic")
    parser.add_argument("--doc", default="docs/results.md", help="the report to write [%(default)s]")
    parser.add_argument("--models", type=_csv, default=list(study.MODELS), help="comma-separated [all eight]")
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in _csv(s)], default=list(study.SEEDS),
                        help="comma-separated [0,1,2]")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides for every run, e.g. train.epochs=2 (recorded in the report)")
    args = parser.parse_args(argv)
    from vidrcnn.models import list_models

    unknown = [m for m in args.models if m not in list_models()]
    if unknown:
        parser.error(f"unknown model(s): {', '.join(unknown)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    log = logging.getLogger("study")
    start = time.perf_counter()
    data = Path(args.data) if args.data else Path(args.out) / "synthetic"
    if not (data / "classes.json").is_file():
        if args.data:
            parser.error(f"{data} is not a synthetic dataset (no classes.json); make one with tools/make_synthetic.py")
        from vidrcnn.data.synthetic import make_synthetic

        log.info("generating the synthetic dataset into %s", data)
        make_synthetic(data)
    results = study.run_study(data.resolve(), args.out, models=args.models, seeds=args.seeds, overrides=args.overrides)
    command = shlex.join(["python", "tools/study.py", *(argv if argv is not None else sys.argv[1:])])
    study.write_report(results, args.doc, command=command)
    print(Path(args.doc).read_text(encoding="utf-8").split("## Findings")[0].rstrip())
    print(f"\nwrote {args.doc} and its plots; runs in {args.out} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_tool(main))
