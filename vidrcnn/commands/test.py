"""Evaluate a checkpoint on its test split as UCF101 results are reported (softmax averaged over K clips per video).

    python tools/test.py --checkpoint CKPT [--json OUT.json] [--confusion OUT.png] [--overwrite] [key=value ...]

The checkpoint holds the weights, classes, preprocessing and training config; ``key=value`` overrides it, e.g.
``data.root=/data/UCF101 data.split=2 eval.num_clips=10 eval.three_crop=true data.num_workers=4``. Unreadable test
videos count as wrong and are listed. The confusion matrix PNG goes to --confusion, by default next to the JSON
(OUT.confusion.png) or, without --json, next to the checkpoint (CKPT_STEM.confusion.png).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint written by tools/train.py")
    parser.add_argument("--json", help="write every metric, per-class accuracy and the confusion matrix here")
    parser.add_argument("--confusion", help="confusion matrix PNG (default: see above)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    parser.add_argument("--weights", choices=("ema", "raw"),
                        help="the EMA of the weights or the raw ones (default: the checkpoint's, EMA when it has one)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--overwrite", action="store_true", help="replace --json / confusion files that are not results of this tool")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (docs/guide/config.md)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")  # unreadable videos, once each

    # Imported here so that --help and argument errors answer without loading torch.
    from vidrcnn.engine.distributed import resolve_device
    from vidrcnn.engine.evaluate import evaluate_checkpoint, format_table, write_result
    from vidrcnn.engine.plots import plot_confusion
    from vidrcnn.outputs import check_output_file, is_json_with, is_own_png

    resolve_device(args.device)  # a GPU that is not there fails first

    if args.confusion:
        png = Path(args.confusion)
    elif args.json:
        png = Path(args.json).with_suffix(".confusion.png")
    else:
        png = Path(args.checkpoint).with_suffix(".confusion.png")
    # Where the results go is checked before the evaluation, not after it.
    # A previous result of this tool (its JSON, its PNG) is replaced; anything else only with --overwrite.
    if args.json:
        check_output_file(args.json, overwrite=args.overwrite, inputs=[args.checkpoint],
                          replaceable=is_json_with(("top1", "protocol", "confusion")))
    check_output_file(png, overwrite=args.overwrite, inputs=[args.checkpoint], replaceable=is_own_png)
    result = evaluate_checkpoint(args.checkpoint, args.overrides, device=args.device, progress=not args.quiet,
                                 weights=args.weights)
    protocol = result["protocol"]
    views = f"{protocol['num_clips']} clips" + (" x 3 crops" if protocol["three_crop"] else "")
    plot_confusion(result["confusion"], result["classes"], png, columns=result["confusion_columns"],
                   title=f"{result['model_name']} ({views}): top-1 {100 * result['top1']:.1f}%")
    if args.json:
        write_result(result, args.json)

    print(format_table(result))
    worst = sorted((s["top1"], name) for name, s in result["per_class"].items() if s["top1"] is not None)[:5]
    if worst:
        print("lowest classes: " + ", ".join(f"{name} {100 * acc:.0f}%" for acc, name in worst))
    for path in result["skipped"]:
        print(f"unreadable (counted wrong): {path}", file=sys.stderr)
    print(f"confusion matrix: {png}" + (f"; metrics: {args.json}" if args.json else ""), file=sys.stderr)
    return 0
