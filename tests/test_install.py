"""The package declares every third-party module it imports, so a fresh install never depends on what other
packages happen to pull in."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vidrcnn"


def _imported_top_level_modules() -> dict[str, str]:
    """Top-level module name -> first file importing it, for every absolute import in the package."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.partition(".")[0], str(path.relative_to(PACKAGE.parent)))
    return found


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_third_party_import_is_a_declared_dependency():
    declared = {_norm(re.split(r"[\s;<>=!~\[]", req, maxsplit=1)[0]) for req in requires("vidrcnn") or []
                if "extra ==" not in req}
    dists = packages_distributions()
    third_party = {m: f for m, f in _imported_top_level_modules().items()
                   if m not in sys.stdlib_module_names and m != "vidrcnn"}
    assert {"torch", "av", "PIL", "yaml"} <= set(third_party)  # the walk sees the package's imports
    undeclared = {m: f for m, f in third_party.items() if not {_norm(d) for d in dists.get(m, [m])} & declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_license_is_an_spdx_string():
    text = (PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^license = "MIT"$', text, re.MULTILINE) and "license = {" not in text
