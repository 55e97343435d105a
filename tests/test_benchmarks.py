"""benchmarks/run.py, the one entry point of benchmarks/: it lists every benchmark in the folder with what it
measures and a doc that exists, runs one by name with its arguments and exit code, and refuses an unknown name; every
benchmark answers --help."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
RUN = BENCHMARKS / "run.py"
NAMES = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.name != "run.py")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUN), *args], capture_output=True, text=True, timeout=60, check=False)


def test_the_folder_holds_the_benchmarks_a_user_reruns():
    assert NAMES == ["checkpoint_memory", "convlstm_reference", "gpu_suite", "onnx_stream", "rcn_options_cost",
                     "repeat_aug", "serve_load", "stream_frame", "train_step"]


def test_the_listing_names_every_benchmark_what_it_measures_and_a_doc_that_exists():
    run = _run()
    assert run.returncode == 0 and not run.stderr, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 2 * len(NAMES)
    for (head, figures), name in zip(zip(lines[::2], lines[1::2]), NAMES):
        listed, _, first = head.partition(" ")
        assert listed == name and first.strip() and not first.strip().startswith("("), head
        doc = ast.get_docstring(ast.parse((BENCHMARKS / f"{name}.py").read_text(encoding="utf-8")))
        assert doc.splitlines()[0] == first.strip()  # the docstring's first line, as written
        assert figures.strip().startswith("figures: "), figures
        paths = re.findall(r"\b(?:docs/[\w./-]*[\w/]|README\.md)", figures)
        assert paths, f"{name}: its docstring names no doc with its figures"
        missing = [p for p in paths if not (REPO / p).exists()]
        assert not missing, f"{name}: {missing} not in the repository"


def test_an_unknown_name_is_refused_with_the_known_ones():
    run = _run("no_such_bench", "--help")
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.strip() == f"error: unknown benchmark 'no_such_bench'; known: {', '.join(NAMES)}"


def test_a_benchmark_runs_with_its_arguments_and_its_exit_code(tmp_path):
    # serve_load imports only numpy before parsing: the cheapest to start. Its own argparse answers.
    ok = _run("serve_load", "--help")
    assert ok.returncode == 0 and "--streams" in ok.stdout, ok.stderr[-2000:]
    bad = _run("serve_load", "--no-such-option")
    assert bad.returncode == 2 and "unrecognized arguments: --no-such-option" in bad.stderr


@pytest.fixture
def benchmark_modules(monkeypatch):
    """Each benchmark as a module, loaded as ``python benchmarks/NAME.py`` runs it: with benchmarks/ on sys.path
    (gpu_suite imports two benchmarks by name), which the sibling modules it imported leave with the test."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    before = set(sys.modules)
    modules = {}
    for name in NAMES:
        spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
        modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(modules[name])
    yield modules
    for name in set(NAMES) & (set(sys.modules) - before):
        del sys.modules[name]


def test_every_benchmark_answers_help(benchmark_modules, capsys):
    # main(["--help"]) of each, in this process (torch imported once), as `run.py NAME --help` calls it
    for name, module in benchmark_modules.items():
        with pytest.raises(SystemExit) as exit_:
            module.main(["--help"])
        text = capsys.readouterr().out
        assert exit_.value.code == 0 and text.startswith("usage: "), (name, exit_.value.code, text[:300])
