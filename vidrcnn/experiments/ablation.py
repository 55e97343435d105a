"""The ablation behind ``python tools/study.py --ablation``: which design choices make a recurrent conv network learn.

Each :class:`Variant` is a registered model with builder options (``model.kwargs``) and, rarely, other config
overrides; it trains with the study's recipe (``configs/synthetic_<model>.yaml``) once per seed and per frame size, through
:func:`vidrcnn.experiments.study.run_one`, so a stopped ablation continues where it left off. :func:`write_report` writes
``docs/reports/rcn_design_choices.md``: per frame size, one row per variant (mean ± std over seeds), and generated findings that
compare each variant with its model's first row, the reference.

The variants switch options *off* and *on* explicitly, so the table keeps its meaning when the builders' defaults
change: the reference rows reproduce the models as they were before the options existed.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from vidrcnn.errors import VidrcnnError
from vidrcnn.experiments.study import KINDS, TARGET_TOP1, _machine, mean_std, run_one, time_to_target
from vidrcnn.experiments.study_report import _pm, _seconds_cell, _seconds_ratio
from vidrcnn.experiments.variants import VARIANTS, Variant

log = logging.getLogger(__name__)

def run_ablation(data: Mapping[int, str | os.PathLike], out_dir: str | os.PathLike, *,
                 variants: Sequence[Variant] = VARIANTS, seeds: Sequence[int] = (0, 1, 2),
                 skip: Collection[tuple[int, str, int]] = ()) -> dict[int, list[dict]]:
    """Run (or pick up) every variant and seed on each frame size in ``data`` (size -> synthetic dataset root),
    but the ``(size, label, seed)`` in ``skip``."""
    results: dict[int, list[dict]] = {}
    # Seed by seed: an ablation stopped early has every variant at the same number of seeds.
    jobs = [(size, v, s) for size in data for s in seeds for v in variants if size in v.sizes
            and s in (v.seeds if v.seeds is not None else seeds) and (size, v.label, s) not in skip]
    for i, (size, v, seed) in enumerate(jobs, 1):
        start = time.perf_counter()
        r = run_one(v.model, seed, data[size], _run_dir(out_dir, size, v, seed), v.size_overrides(size))
        log.info("[%d/%d] %dpx %s seed %d: top-1 %.3f (%s), %.0f s", i, len(jobs), size, v.label, seed, r["top1"],
                 ", ".join(f"{k} {x:.3f}" for k, x in r["by_kind"].items()), time.perf_counter() - start)
        results.setdefault(size, []).append({**r, "variant": v.label, "options": v.describe()})
    return results


def _run_dir(out_dir: str | os.PathLike, size: int, v: Variant, seed: int) -> Path:
    return Path(out_dir) / f"size{size}" / v.label / f"seed{seed}"


def collect(out_dir: str | os.PathLike, variants: Sequence[Variant],
            ledger: str | os.PathLike | None = None) -> dict[int, list[dict]]:
    """Every finished run of ``variants`` under ``out_dir``, at every frame size and seed found, by size, and, with
    ``ledger`` (see :func:`update_ledger`), every run recorded there that ``out_dir`` lacks; a result made with other
    overrides than the variant's today is refused (as :func:`vidrcnn.experiments.study.run_one` does)."""
    found: dict[tuple[int, str, int], dict] = {}
    for size in sorted({size for v in variants for size in v.sizes}):
        for v in variants:
            if size not in v.sizes:
                continue
            for done in sorted(Path(out_dir).glob(f"size{size}/{glob.escape(v.label)}/seed*/result.json")):
                r = json.loads(done.read_text(encoding="utf-8"))
                _check_overrides(r, v, size, where=str(done), fix="delete it to train again")
                found[size, v.label, r["seed"]] = r
    by_label = {v.label: v for v in variants}
    for where, r in _read_ledger(ledger) if ledger is not None else ():
        v = by_label.get(r["variant"])
        if v is not None and r["size"] in v.sizes and (r["size"], v.label, r["seed"]) not in found:
            _check_overrides(r, v, r["size"], where=where, fix="delete that line to train it again")
            found[r["size"], v.label, r["seed"]] = {k: x for k, x in r.items() if k not in ("size", "variant")}
    # By size, then in the order of ``variants``, then by seed.
    order = {v.label: i for i, v in enumerate(variants)}
    results: dict[int, list[dict]] = {}
    for (size, label, _seed), r in sorted(found.items(), key=lambda kv: (kv[0][0], order[kv[0][1]], kv[0][2])):
        results.setdefault(size, []).append({**r, "variant": label, "options": by_label[label].describe()})
    return results


def _check_overrides(result: Mapping[str, Any], v: Variant, size: int, *, where: str, fix: str) -> None:
    if result.get("overrides") != v.size_overrides(size):
        raise VidrcnnError(f"{where} was produced with overrides {result.get('overrides')}, not "
                           f"{v.size_overrides(size)}: {fix}")


def ledger_path(doc: str | os.PathLike) -> Path:
    """Where a report keeps the record of its runs: ``docs/reports/training_recipe.md`` -> ``docs/reports/training_recipe.runs.jsonl``."""
    return Path(doc).with_suffix(".runs.jsonl")


def _read_ledger(ledger: str | os.PathLike) -> list[tuple[str, dict]]:
    """``(where, entry)`` for each line of ``ledger`` (none when it does not exist)."""
    path = Path(ledger)
    if not path.is_file():
        return []
    entries = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise VidrcnnError(f"{where}: not a JSON line ({e.msg})") from None
        if not isinstance(entry, dict) or not {"size", "variant", "seed", "overrides"} <= entry.keys():
            raise VidrcnnError(f"{where}: not a run record (needs size, variant, seed and overrides)")
        entries.append((where, entry))
    return entries


def update_ledger(ledger: str | os.PathLike, results: Mapping[int, Sequence[Mapping[str, Any]]]) -> None:
    """Record every run of ``results`` in ``ledger``, one JSON line per (size, variant, seed), beside the runs it
    already holds (a run of ``results`` replaces its own line). The output folder does not outlive the machine it was
    made on, while the ledger is committed with the report: a report whose seeds were run on several machines or days
    is regenerated from it, and only the runs it lacks are trained."""
    from vidrcnn.outputs import atomic_output

    lines = {(e["size"], e["variant"], e["seed"]): e for _, e in _read_ledger(ledger)}
    for size, runs in results.items():
        for r in runs:
            entry = {k: x for k, x in r.items() if k != "options"}
            lines[size, r["variant"], r["seed"]] = {"size": size, **entry}
    Path(ledger).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(ledger) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(lines[key], sort_keys=True) + "\n" for key in sorted(lines))


def pair_accuracy(result: Mapping[str, Any]) -> dict[str, float]:
    """Top-1 over the two classes of each synthetic pair (a class and its time reversal; a class without a pair
    stands alone), from the result's confusion matrix. A model that sees single frames only gets 50% on a pair."""
    from vidrcnn.data.synthetic_classes import CLASSES

    pair_of = {c.name: c.pair or c.name for c in CLASSES}
    hits: dict[str, int] = {}
    totals: dict[str, int] = {}
    for i, name in enumerate(result["classes"]):
        group = pair_of.get(name, name)
        hits[group] = hits.get(group, 0) + int(result["confusion"][i][i])
        totals[group] = totals.get(group, 0) + int(sum(result["confusion"][i]))
    return {g: hits[g] / totals[g] for g in totals if totals[g]}


def summarize_variants(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per variant, in order of first appearance, with mean and std over its seeds."""
    by: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        by.setdefault(r["variant"], []).append(r)
    rows = []
    for label, runs in by.items():
        row = {"variant": label, "model": runs[0]["model"], "options": runs[0]["options"],
               "seeds": [r["seed"] for r in runs], "top1": mean_std([r["top1"] for r in runs]),
               "train_top1": mean_std([r["train_top1"] for r in runs]),
               "train_seconds": mean_std([r["train_seconds"] for r in runs]),
               "params": runs[0]["params"], "flops": runs[0]["flops"]}
        if (reach := time_to_target(runs)) is not None:
            row["seconds_to_target"] = reach
        for kind in KINDS:
            vals = [r["by_kind"][kind] for r in runs if kind in r["by_kind"]]
            if vals:
                row[kind] = mean_std(vals)
        per_run = [pair_accuracy(r) for r in runs if "confusion" in r]
        row["pairs"] = {g: mean_std([p[g] for p in per_run]) for g in per_run[0]} if per_run else {}
        rows.append(row)
    return rows


def _delta(row: Mapping[str, Any], ref: Mapping[str, Any], key: str = "top1") -> str:
    d = row[key][0] - ref[key][0]
    if row[key][1] is None or ref[key][1] is None:
        return f"{100 * d:+.1f} points (one seed: no spread to test it against)"
    spread = row[key][1] + ref[key][1]
    verdict = "beyond" if abs(d) > spread else "within"
    return f"{100 * d:+.1f} points ({verdict} the seed spread of both, {100 * spread:.1f})"


def findings(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each variant against its model's reference (the first row of that model), and the best row per model."""
    out = []
    refs: dict[str, Mapping[str, Any]] = {}
    for r in rows:
        refs.setdefault(r["model"], r)
    for model, ref in refs.items():
        others = [r for r in rows if r["model"] == model and r is not ref]
        if not others:
            continue
        parts = [f"`{r['variant']}` {_delta(r, ref)}" for r in others]
        best = max([ref, *others], key=lambda r: r["top1"][0])
        out.append(f"**`{model}`** (reference `{ref['variant']}`, {_pm(ref['top1'])}%): " + "; ".join(parts)
                   + f". Best mean: `{best['variant']}` at {_pm(best['top1'])}%"
                   + (f", long-range order {_pm(best['global'])}" if "global" in best else "") + ".")
    return out


def _pair_table(rows: Sequence[Mapping[str, Any]], size: int) -> list[str]:
    """Markdown lines: top-1 per class pair and variant (nothing when the runs hold no confusion matrix)."""
    pairs = sorted({g for r in rows for g in r["pairs"]})
    if not pairs:
        return []
    lines = [(f"Top-1 per class pair at {size}x{size} (each pair is a clip and its time reversal, so a model that sees "
              "frames but not their order gets at most 50% on it):"), "",
             "| variant | seeds | " + " | ".join(pairs) + " |", "|---|---|" + "---|" * len(pairs)]
    for r in rows:
        cells = (_pm(r["pairs"][g]) if g in r["pairs"] else "" for g in pairs)
        lines.append(f"| `{r['variant']}` | {len(r['seeds'])} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def variant_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown lines: one row per variant (from :func:`summarize_variants`), top-1 by class kind and cost; where the
    runs recorded a validation curve, the seconds to the study's validation target and their ratio to the 3-D CNN's
    (the first ``c3d_s`` row: its variants of the same run are the time reference)."""
    kinds = [k for k in KINDS if any(k in r for r in rows)]
    timed = any("seconds_to_target" in r for r in rows)
    base = next((r for r in rows if r["model"] == "c3d_s"), None)
    target = f" | s to {100 * TARGET_TOP1:.0f}% val | ÷ c3d_s" if timed else ""
    lines = ["| variant | options | seeds | top-1 | " + " | ".join(KINDS[k] for k in kinds)
             + " | train top-1 | params | GFLOPs/clip | train s" + target + " |",
             "|---|---|---|---|" + "---|" * len(kinds) + "---|---|---|---|" + "---|---|" * timed]
    for r in rows:
        reach = f" | {_seconds_cell(r)} | {_seconds_ratio(r, base)}" if timed else ""
        lines.append(f"| `{r['variant']}` | {r['options']} | {len(r['seeds'])} | {_pm(r['top1'])} | "
                     + " | ".join(_pm(r[k]) if k in r else "" for k in kinds)
                     + f" | {_pm(r['train_top1'])} | {r['params'] / 1e6:.3f}M | {r['flops'] / 1e9:.2f} | "
                     f"{r['train_seconds'][0]:.0f}{reach} |")
    return lines


def write_report(results: Mapping[int, Sequence[Mapping[str, Any]]], doc: str | os.PathLike, *, command: str) -> None:
    """``docs/reports/rcn_design_choices.md``: a table and findings per frame size."""
    doc = Path(doc)
    first = next(iter(results.values()))[0]
    conf = first["config"]
    lines = ["# Ablation: what makes a recurrent conv network learn", "",
             f"<!-- Generated by `{command}`; do not edit by hand. -->", "",
             (f"The study's recipe (`configs/synthetic.yaml`: {conf['data.num_frames']} frames, {conf['data.sampling']} "
              f"sampling, {conf['train.epochs']} epochs, batch {conf['train.batch_size']}, AdamW at lr "
              f"{conf['train.lr']:g}) on the synthetic dataset at each frame size, one row per variant, mean ± std over "
              "seeds, in %. Options not named are off (`preact_norm=None`, no chrono, `residual=False`, "
              "`head=last`, `input_frames=1`, `stem_frames=1`, `stem_downsample=stride`, `activation=tanh` where the cell has it): the first row of each model is the model as it was before the options existed. "
              f"Chance is {100 / len(first['classes']):.1f}%, the single-frame ceiling "
              f"{100 * first['single_frame_ceiling']:.1f}%. The tables gather every finished run in the output folder "
              f"and in `{ledger_path(doc).name}` beside this report, so rows may have fewer seeds than the command "
              "asks for (the seeds column)."), ""]
    doc.write_text("\n".join(lines + report_sections(results, pair_tables=True)), encoding="utf-8")


def report_sections(results: Mapping[int, Sequence[Mapping[str, Any]]], *, pair_tables: bool) -> list[str]:
    """Markdown lines of a variant report after its introduction: per frame size the table, the findings against
    each model's first row (and, with ``pair_tables``, top-1 per class pair), then the runs' total time."""
    lines: list[str] = []
    total = 0.0
    for size, res in results.items():
        rows = summarize_variants(res)
        total += sum(r["wall_seconds"] for r in res)
        lines += [f"## {size}x{size} pixels", "", *variant_table(rows), ""]
        for paragraph in findings(rows):
            lines += [paragraph, ""]
        if pair_tables:
            lines += _pair_table(rows, size)
    n = sum(len(r) for r in results.values())
    # Each run says where it ran (the oldest runs do not: they ran here, as far as the report knows).
    machines = Counter(r.get("machine", _machine()) for res in results.values() for r in res)
    where = (next(iter(machines)) if len(machines) == 1 else
             "; ".join(f"{m} ({k} run{'s' * (k > 1)})" for m, k in sorted(machines.items())))
    return [*lines, f"The {n} runs took {total / 60:.1f} minutes in all, training and scoring, on {where}.", ""]


def ablate(out_dir: Path, doc: Path, *, sizes: Sequence[int], variants: Sequence[Variant], seeds: Sequence[int],
           command: str, pool: Sequence[Variant] = VARIANTS,
           report: Callable[..., None] | None = None, train: bool = True) -> Path:
    """Generate a synthetic dataset per frame size under ``out_dir`` (when missing), run every variant and seed at
    ``sizes``, and write ``doc`` with ``report`` (default :func:`write_report`) from every finished run of every
    variant of ``pool`` (and of ``variants``) in ``out_dir``, so a later call with other sizes, seeds or variants adds
    to the report, it does not replace it; returns ``doc``. The recipe report (:mod:`vidrcnn.experiments.recipe_report`) passes
    its own ``pool`` and ``report``. With ``train=False`` nothing is generated or trained: the report is written from
    the runs finished so far."""
    from vidrcnn.data.synthetic import make_synthetic

    doc.parent.mkdir(parents=True, exist_ok=True)  # fail now, not after the runs, when the folder cannot be made
    data = {}
    for size in sizes if train else ():
        data[size] = (out_dir / f"synthetic{size}").resolve()
        if not (data[size] / "classes.json").is_file():
            log.info("generating the %dx%d synthetic dataset into %s", size, size, data[size])
            make_synthetic(data[size], size=size)
    start = time.perf_counter()
    ledger = ledger_path(doc)
    everything = [*variants, *(v for v in pool if v not in variants)]
    # Runs the ledger holds are not trained again (it may hold them from another machine).
    recorded = collect(out_dir, everything, ledger)
    done = {(size, r["variant"], r["seed"]) for size, runs in recorded.items() for r in runs}
    if train:
        run_ablation(data, out_dir, variants=variants, seeds=seeds, skip=done)
    # The variants asked for first (a model's first row is the reference its findings compare with), then the rest.
    results = collect(out_dir, everything, ledger)
    if not results:
        raise VidrcnnError(f"no finished run in {out_dir} or {ledger}: nothing to report")
    update_ledger(ledger, results)
    (report or write_report)(results, doc, command=command)
    log.info("wrote %s; runs in %s (%.0f s)", doc, out_dir, time.perf_counter() - start)
    return doc


__all__ = ["ablate", "collect", "findings", "ledger_path", "report_sections", "run_ablation",
           "summarize_variants", "update_ledger", "variant_table", "write_report"]
