"""The comparison study: train every family on the synthetic dataset over 3 seeds and write docs/reports/model_comparison.md.

    python tools/study.py                                   # what `make study` runs (about 45 minutes on 2 CPU cores)
    python tools/study.py --models rcn_gru_s,frame_avg_s --seeds 0 --doc /tmp/results.md   # a subset
    python tools/study.py --ablation                        # the RCN design choices: docs/reports/rcn_design_choices.md
    python tools/study.py --ablation --sizes 32 --variants gru,gru+preact_norm=batch --seeds 0
    python tools/study.py --recipe                          # Mixup, CutMix, EMA, repeats: docs/reports/training_recipe.md
    python tools/study.py --recipe --report-only            # the report from the runs done so far, training nothing

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


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    from vidrcnn.experiments import study, study_report

    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="runs and the generated dataset [outputs/study]")
    parser.add_argument("--data", help="an existing synthetic dataset to use instead of OUT/synthetic")
    parser.add_argument("--doc", help="the report to write [docs/reports/model_comparison.md]; an existing file is replaced only when "
                        "it is a generated report (or with --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace a --doc that is not a generated report")
    parser.add_argument("--models", type=_csv, default=list(study.MODELS), help="comma-separated [all eight]")
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in _csv(s)], default=list(study.SEEDS),
                        help="comma-separated [0,1,2]")
    parser.add_argument("--ablation", action="store_true",
                        help="run the RCN design ablation (vidrcnn/experiments/ablation.py) instead; --doc defaults to "
                             "docs/reports/rcn_design_choices.md, --out to outputs/ablation")
    parser.add_argument("--recipe", action="store_true",
                        help="run the training-recipe report (vidrcnn/experiments/recipe_report.py) instead; --doc defaults to "
                             "docs/reports/training_recipe.md, --out to outputs/recipe, --sizes to 64")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in _csv(s)],
                        help="ablation, recipe: frame sizes, each with its own synthetic dataset under OUT "
                             "[ablation: 32,64; recipe: 64]")
    parser.add_argument("--variants", type=_csv, help="ablation, recipe: comma-separated variant labels [all]")
    parser.add_argument("--report-only", action="store_true",
                        help="ablation, recipe: train nothing, write the report from the finished runs in OUT and the "
                             "record of runs beside the report (DOC with .runs.jsonl)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides for every run, e.g. train.epochs=2 (recorded in the report)")
    args = parser.parse_args(argv)
    if args.ablation and args.recipe:
        parser.error("--ablation and --recipe are two reports: ask for one")
    if args.report_only and not (args.ablation or args.recipe):
        parser.error("--report-only is for --ablation and --recipe")
    if args.ablation or args.recipe:
        return _ablation(parser, args, argv)
    args.out, args.doc = args.out or "outputs/study", args.doc or "docs/reports/model_comparison.md"
    _check_doc(args)
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
    study_report.write_report(results, args.doc, command=command)
    print(Path(args.doc).read_text(encoding="utf-8").split("## Findings")[0].rstrip())
    print(f"\nwrote {args.doc} and its plots; runs in {args.out} ({time.perf_counter() - start:.0f} s)")
    return 0


def _check_doc(args: argparse.Namespace) -> None:
    """The report's place is checked before the runs (which take half an hour or more), not after them."""
    from vidrcnn.outputs import check_output_file, is_generated_report

    Path(args.doc).parent.mkdir(parents=True, exist_ok=True)
    check_output_file(args.doc, overwrite=args.overwrite, replaceable=is_generated_report)


def _ablation(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None) -> int:
    """The ablation (``--ablation``) or the recipe report (``--recipe``): variants of vidrcnn/experiments/ablation.py or
    vidrcnn/experiments/recipe_report.py, run by the same runner."""
    from vidrcnn.experiments import ablation, recipe_report, variants

    if args.recipe:
        flag, name, doc_name = "--recipe", "recipe", "training_recipe"
        pool, report, default_sizes = recipe_report.VARIANTS, recipe_report.write_report, list(recipe_report.SIZES)
    else:
        flag, name, doc_name = "--ablation", "ablation", "rcn_design_choices"
        pool, report, default_sizes = variants.VARIANTS, None, [32, 64]
    if args.overrides or args.data:
        parser.error(f"{flag} takes no config overrides and no --data: its variants say what they change")
    known = {v.label: v for v in pool}
    unknown = [label for label in args.variants or [] if label not in known]
    if unknown:
        parser.error(f"unknown variant(s): {', '.join(unknown)}; known: {', '.join(known)}")
    sizes = args.sizes or default_sizes
    if any(s < 32 or s % 2 for s in sizes):
        parser.error("--sizes must be even frame sizes >= 32")
    args.doc = args.doc or f"docs/reports/{doc_name}.md"
    _check_doc(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    # The recipe's variants in their own order (each model's plain row first: the reference of its findings).
    variants = [v for v in pool if v.label in args.variants] if args.recipe and args.variants else [
        known[v] for v in args.variants or known]
    doc = ablation.ablate(Path(args.out or f"outputs/{name}"), Path(args.doc), sizes=sizes, variants=variants,
                          seeds=args.seeds, pool=pool, report=report, train=not args.report_only,
                          command=shlex.join(["python", "tools/study.py", *(argv if argv is not None else sys.argv[1:])]))
    print(doc.read_text(encoding="utf-8"))
    return 0
