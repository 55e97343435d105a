"""What the timing benchmarks in ``benchmarks/`` share: ``--threads``, ``--iters``, ``--stat`` and reading the
statistic; the layer configurations of the layer benchmarks; a model variant ``MODEL:key=value,...`` read as builder
options (also :mod:`vidrcnn.experiments.diagnostics_report`).

Imported as a package module: ``from vidrcnn.profiling.bench_args import timing_parser, parse, stat_ms``.
"""

from __future__ import annotations

import argparse

import torch

from vidrcnn.profiling.measure import Timing


def timing_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser with the shared timing options; the script adds its own."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    # min: the least disturbed sample, for a machine shared with other work
    ap.add_argument("--stat", choices=("median", "min"), default="median", help="statistic of the timed calls")
    return ap


def parse(ap: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv`` and apply ``--threads``."""
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args


def stat_ms(timing: Timing, args: argparse.Namespace) -> float:
    """The ``--stat`` statistic of ``timing``, in milliseconds."""
    return getattr(timing, f"{args.stat}_ms")


# The ConvLSTM layer configurations the layer benchmarks share, so that their tables line up row for row.
LAYER_CONFIGS = "1x32x40x16x16,4x32x40x16x16,2x32x64x32x16"


def add_layer_configs(ap: argparse.ArgumentParser) -> None:
    """``--configs``: the layer configurations to run, ``BxCinxChiddenxSIZExT`` separated by commas."""
    ap.add_argument("--configs", default=LAYER_CONFIGS, help="comma list of BxCinxChiddenxSIZExT [%(default)s]")


def layer_configs(args: argparse.Namespace) -> list[tuple[int, int, int, int, int]]:
    """``(B, C_in, C_hidden, size, T)`` for each of ``--configs``."""
    return [tuple(map(int, spec.split("x"))) for spec in args.configs.split(",")]


def parse_variant(text: str) -> tuple[str, dict]:
    """``MODEL`` or ``MODEL:key=value,key=value`` (builder options, values read as YAML) -> (name, kwargs)."""
    import yaml

    name, _, opts = text.partition(":")
    kwargs = {}
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        kwargs[key.strip()] = yaml.safe_load(value)
    return name, kwargs
