"""The shape of the package's imports: import circles, top-level parts, import layers, the largest files.

    python -m vidrcnn.experiments.import_graph [--root DIR]

``--root``: the folder holding the ``vidrcnn`` package to count (default: this checkout), so that two checkouts are
counted by one command (e.g. ``git worktree add /tmp/before <commit>``, then ``--root /tmp/before``). The figures go
into the closing notes of the house issues; ``lint-imports`` (``make test``) enforces the layers themselves.

- import circles: groups of modules that import each other round (strongly connected components of more than one
  module), counting every import, those inside functions too;
- top-level parts: the modules and packages directly under ``vidrcnn/``;
- import layers: the longest chain of top-level parts each importing the next, plus one;
- the largest file in ``data/`` and ``io/``, in lines.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PACKAGE = "vidrcnn"


def strongly_connected(nodes: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components, iteratively (a module graph is deeper than Python's recursion limit allows)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(nodes):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(sorted(edges.get(root, ()))))]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(sorted(component))
    return out


def longest_chain(parts: list[str], edges: dict[str, set[str]]) -> int:
    """Layers: the longest import chain over the parts (circles counted as one part), plus one."""
    components = strongly_connected(set(parts), edges)
    component_of = {p: k for k, c in enumerate(components) for p in c}
    depth: dict[int, int] = {}

    def layers(k: int) -> int:
        if k not in depth:
            below = {component_of[q] for p in components[k] for q in edges[p]} - {k}
            depth[k] = 1 + max((layers(j) for j in below), default=0)
        return depth[k]

    return max(layers(k) for k in range(len(components)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.root.resolve()))
    import grimp  # the dev extra (import-linter's graph); imported here so that --help needs nothing

    # Run as ``python -m``, this checkout's package is imported already, and grimp finds the package to count by
    # importlib.util.find_spec, which answers from sys.modules: set the entry aside, so that --root's is counted.
    loaded = sys.modules.pop(PACKAGE, None)
    try:
        graph = grimp.build_graph(PACKAGE)
    finally:
        if loaded is not None:
            sys.modules[PACKAGE] = loaded
    modules = {m for m in graph.modules if m.startswith(PACKAGE + ".")}
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m) if i in modules} for m in modules}
    circles = [c for c in strongly_connected(modules, edges) if len(c) > 1]
    parts = sorted(graph.find_children(PACKAGE))

    def top(module: str) -> str:
        return ".".join(module.split(".")[:2])

    part_edges: dict[str, set[str]] = {p: set() for p in parts}
    for module, imported in edges.items():
        part_edges[top(module)].update(top(i) for i in imported if top(i) != top(module))
    print(f"package: {args.root.resolve() / PACKAGE}")
    print(f"import circles: {len(circles)}")
    for circle in circles:
        print(f"  {' <-> '.join(circle)}")
    print(f"top-level parts: {len(parts)}")
    print(f"import layers: {longest_chain(parts, part_edges)}")
    for sub in ("data", "io"):
        sizes = [(len(p.read_text(encoding="utf-8").splitlines()), p) for p in (args.root / PACKAGE / sub).rglob("*.py")]
        lines, path = max(sizes)
        print(f"largest file in {sub}/: {path.relative_to(args.root)} ({lines} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
