"""The ``vidrcnn`` command (``vidrcnn COMMAND [ARGS]``, one subcommand per tool) and what every tool shares: package
errors become one ``error: ...`` line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from collections.abc import Callable

from vidrcnn.errors import VidrcnnError


def run_tool(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run ``main(argv)``; a :class:`VidrcnnError` or OSError prints ``error: <file>: <cause>`` without a traceback."""
    try:
        return int(main(argv) or 0)
    except VidrcnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. an output folder that cannot be written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


# name -> (module under vidrcnn.commands, one line for `vidrcnn --help`); tools/<script>.py run the same main.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "train a model from a config (one machine, or many through torchrun)"),
    "test": ("test", "video-level accuracy of a checkpoint on a test split, with the confusion matrix"),
    "infer": ("infer", "classify a video of any length, or a live source: top-K and a timeline"),
    "serve": ("serve", "serve a model over HTTP and WebSocket: uploads, live streams and a live page"),
    "export": ("export", "export a checkpoint to ONNX (a streaming step or the clip model), checked with onnxruntime"),
    "profile": ("profile", "latency against clip length: where the sequential bottleneck shows"),
    "study": ("study", "the comparison study, the design ablation or the recipe report, and their reports"),
    "scan": ("scan", "check that every video of a dataset decodes (tools/scan_videos.py)"),
    "extract-frames": ("extract_frames", "write a dataset's videos as folders of frames (resumable)"),
    "make-synthetic": ("make_synthetic", "make the synthetic dataset, in UCF101 or another format's layout"),
    "bench-decode": ("bench_decode", "clips/s of each decoder backend against the naive loader"),
    "demo": ("demo", "make data, train, test and infer in a few minutes"),
}


def _parser() -> argparse.ArgumentParser:
    width = max(map(len, COMMANDS))
    listing = "\n".join(f"  {name:<{width}}  {line}" for name, (_, line) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="vidrcnn", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Recurrent convolutional networks for video action recognition.",
        epilog=f"commands:\n{listing}\n\n`vidrcnn COMMAND --help` describes each one.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("command", metavar="COMMAND", choices=list(COMMANDS), help="one of the commands below")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vidrcnn")
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """``vidrcnn COMMAND [ARGS]``: run the command's main on ARGS (its flags are those of ``tools/<name>.py``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0].startswith("-") or argv[0] not in COMMANDS:
        _parser().parse_args(argv[:1])  # --help, --version, or an error naming the commands; exits
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(f"vidrcnn.commands.{COMMANDS[name][0]}")  # only the command asked for
    return run_tool(functools.partial(module.main, prog=f"vidrcnn {name}"), rest)


if __name__ == "__main__":  # python -m vidrcnn.cli COMMAND ...: what the demo runs its steps with
    sys.exit(main())
