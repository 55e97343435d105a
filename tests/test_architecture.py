"""The layering contracts in pyproject.toml hold on the package and catch what they exist to catch: an upward
import, a dataset format importing another, an import circle (each planted in a throwaway copy of the package)."""

from __future__ import annotations

import ast
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import vidrcnn.data.formats as formats_package
from vidrcnn.experiments import import_graph

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")  # the dev extra installs it beside the interpreter


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH first: the copy under `root`, not the installed vidrcnn, is the package analysed.
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], check=False, cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "vidrcnn", tmp_path / "vidrcnn", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_every_contract(tmp_path):
    result = _lint_imports(_copy(tmp_path))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("io/planted.py", "import vidrcnn.engine.train", "vidrcnn.io is not allowed to import vidrcnn.engine"),
    ("errors.py", "from vidrcnn.models import get_model", "vidrcnn.errors is not allowed to import vidrcnn.models"),
    ("planted.py", "import vidrcnn.errors", "- vidrcnn.planted"),  # a top-level part with no layer (exhaustive)
])
def test_a_planted_upward_import_breaks_the_layers(tmp_path, module, line, broken):
    root = _copy(tmp_path)
    path = root / "vidrcnn" / module
    path.write_text((path.read_text() if path.exists() else "") + f"\n{line}  # noqa\n")
    result = _lint_imports(root)
    assert result.returncode != 0 and broken in result.stdout, result.stdout[-2000:]


def test_a_format_importing_another_breaks_their_independence(tmp_path):
    root = _copy(tmp_path)
    hmdb51 = root / "vidrcnn" / "data" / "formats" / "hmdb51.py"
    hmdb51.write_text(hmdb51.read_text() + "\nfrom vidrcnn.data.formats.kinetics import video_name  # noqa\n")
    result = _lint_imports(root)
    assert result.returncode != 0 and "broken" in result.stdout
    assert "- vidrcnn.data.formats.hmdb51 -> vidrcnn.data.formats.kinetics" in result.stdout, result.stdout[-2000:]


def test_an_import_circle_inside_a_package_is_refused(tmp_path):
    root = _copy(tmp_path)
    base = root / "vidrcnn" / "io" / "base.py"  # io.probe imports io.base: base importing probe closes a circle
    base.write_text(base.read_text() + "\nfrom vidrcnn.io import probe  # noqa\n")
    result = _lint_imports(root)
    assert result.returncode != 0 and "No cycles are allowed in vidrcnn.io" in result.stdout, result.stdout[-2000:]


def test_every_dataset_format_is_under_the_independence_contract():
    text = (REPO / "pyproject.toml").read_text()
    modules = {m.name for m in pkgutil.iter_modules(formats_package.__path__)} - {"common"}
    assert modules and all(f'"vidrcnn.data.formats.{name}"' in text for name in modules)


def test_import_graph_counts_circles_and_layers(tmp_path):
    edges = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": set()}
    assert import_graph.strongly_connected(set(edges), edges) == [["d"], ["c"], ["a", "b"]]
    assert import_graph.longest_chain(list(edges), edges) == 3  # {a, b} -> c -> d
    root = _copy(tmp_path)
    (root / "vidrcnn" / "io" / "base.py").write_text((root / "vidrcnn" / "io" / "base.py").read_text()
                                                       + "\nfrom vidrcnn.io import probe  # noqa\n")
    # python -m imports this checkout's vidrcnn first: the graph counted must still be the copy's, under --root
    run = subprocess.run([sys.executable, "-m", "vidrcnn.experiments.import_graph", "--root", str(root)],
                         check=True, capture_output=True, text=True, timeout=120)
    circle = run.stdout.split("import circles: 1\n", 1)[1].splitlines()[0]  # base -> probe -> (pyav ->) base
    assert {"vidrcnn.io.base", "vidrcnn.io.probe"} <= set(circle.strip().split(" <-> "))


# The house's size limits (issue 35): a module that outgrows them is split by what it is about, a function by its
# steps. `sizes` measures both; the test below holds the package to them.
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 80


def sizes(root: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(lines, path) of every module and (lines, path:line:name) of every function under ``root``, longest first."""
    files, functions = [], []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        files.append((len(text.splitlines()), str(path.relative_to(root.parent))))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                where = f"{path.relative_to(root.parent)}:{node.lineno}:{node.name}"
                functions.append((node.end_lineno - node.lineno + 1, where))
    return sorted(files, reverse=True), sorted(functions, reverse=True)


def test_no_module_over_400_lines_and_no_function_over_80():
    files, functions = sizes(REPO / "vidrcnn")
    assert [f for f in files if f[0] > MAX_FILE_LINES] == []
    assert [f for f in functions if f[0] > MAX_FUNCTION_LINES] == []


def test_sizes_counts_lines_of_modules_and_functions(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("def f():\n    x = 1\n    return x\n\n\nclass C:\n    def g(self):\n        pass\n")
    files, functions = sizes(package)
    assert files == [(8, "pkg/a.py")] and functions == [(3, "pkg/a.py:1:f"), (2, "pkg/a.py:7:g")]
