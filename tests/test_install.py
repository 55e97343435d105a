"""The package declares every third-party module it imports, so a fresh install never depends on what other
packages happen to pull in."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vidrcnn"


def _imported_top_level_modules() -> dict[str, tuple[str, bool]]:
    """Top-level module name -> (first file importing it, whether every import of it is inside a function), for
    every absolute import in the package."""
    found: dict[str, tuple[str, bool]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # Inside a function, or under ``if TYPE_CHECKING:`` (never run): a plain install does not import it.
        lazy = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                or isinstance(f, ast.If) and isinstance(f.test, ast.Name) and f.test.id == "TYPE_CHECKING"
                for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                first, all_lazy = found.get(top, (str(path.relative_to(PACKAGE.parent)), True))
                found[top] = (first, all_lazy and id(node) in lazy)
    return found


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(extra: bool) -> set[str]:
    return {_norm(re.split(r"[\s;<>=!~\[]", req, maxsplit=1)[0]) for req in requires("vidrcnn") or []
            if ("extra ==" in req) == extra}


def test_every_third_party_import_is_a_declared_dependency():
    # A package of an extra (e.g. onnxruntime, of [deploy]) may only be imported inside a function: a plain install
    # must import every module of the package.
    core, extras = _declared(extra=False), _declared(extra=True) - {"vidrcnn"}
    dists = packages_distributions()
    third_party = {m: f for m, f in _imported_top_level_modules().items()
                   if m not in sys.stdlib_module_names and m != "vidrcnn"}
    assert {"torch", "av", "PIL", "yaml"} <= set(third_party)  # the walk sees the package's imports
    assert "onnxruntime" in third_party and third_party["onnxruntime"][1]  # ... and which of them are lazy
    undeclared = {m: f for m, (f, lazy) in third_party.items()
                  if not {_norm(d) for d in dists.get(m, [m])} & (core | extras if lazy else core)}
    assert not undeclared, f"imported but not declared in pyproject.toml (or an extra imported eagerly): {undeclared}"


def test_license_is_an_spdx_string():
    text = (PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^license = "MIT"$', text, re.MULTILINE) and "license = {" not in text
