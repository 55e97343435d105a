"""The benchmarks: list them, or run one.

    python benchmarks/run.py                  # every benchmark: what it measures and the doc that shows its figures
    python benchmarks/run.py NAME [ARGS ...]  # run benchmarks/NAME.py with ARGS (NAME --help: its options)

Every other ``*.py`` in this folder is a benchmark. The first line of its docstring says what it measures; its
``Figures:`` paragraph names the doc that shows its figures. A benchmark runs in a subprocess with this interpreter,
and its exit code is this command's. The helpers they share are in the package (``vidrcnn.profiling.bench_args``).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIGURES = re.compile(r"^Figures:(.*?)(?:\n\s*\n|\Z)", re.MULTILINE | re.DOTALL)  # the paragraph opening with "Figures:"
DOC = re.compile(r"\b(?:docs/[\w./-]*[\w/]|README\.md)")  # a path in the repository, without closing punctuation


def benchmarks() -> dict[str, Path]:
    """Name -> script of every benchmark in this folder, by name."""
    return {p.stem: p for p in sorted(HERE.glob("*.py")) if p.name != Path(__file__).name}


def describe(script: Path) -> tuple[str, str, list[str]]:
    """The first line of ``script``'s docstring, its ``Figures:`` paragraph on one line, and the doc paths named
    there (the script is read, not imported: listing needs neither torch nor a benchmark's extras)."""
    doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    figures = FIGURES.search(doc)
    text = " ".join(figures.group(1).split()) if figures else ""
    return (doc.splitlines() or [""])[0].strip(), text, DOC.findall(text)


def listing(known: dict[str, Path]) -> str:
    width = max(map(len, known), default=0) + 2
    lines = []
    for name, script in known.items():
        first, figures, _ = describe(script)
        lines += [f"{name:<{width}}{first or '(no docstring)'}",
                  f"{'':<{width}}figures: {figures or '(no Figures: paragraph)'}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    known = benchmarks()
    if not argv or argv[0] in ("-h", "--help"):
        if argv:
            print(__doc__)
        print(listing(known))
        return 0
    name, *args = argv
    if name not in known:
        print(f"error: unknown benchmark {name!r}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    child = subprocess.Popen([sys.executable, str(known[name]), *args])
    while True:
        try:
            code = child.wait()
            break
        except KeyboardInterrupt:  # Ctrl-C reached the benchmark too (one process group): it decides how to stop
            continue
    return code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as a shell reports it


if __name__ == "__main__":
    raise SystemExit(main())
