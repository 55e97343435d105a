"""Latency against clip length: ``python tools/profile.py [--models a,b] [--lengths 4,8,16,32,64] [--out DIR]``.

The same code and flags as ``vidrcnn profile`` (vidrcnn/commands/profile.py, whose docstring is the full usage);
``python tools/profile.py --help`` lists the options.
"""

from __future__ import annotations

import sys

if __name__ != "__main__":
    # A sibling tool runs with tools/ first on sys.path, so cProfile's `import profile` (torch imports cProfile)
    # lands on this file: hand the importer the standard library's module instead. Everything below only defines
    # functions, so nothing else happens on this path.
    import importlib.util
    import sysconfig

    _spec = importlib.util.spec_from_file_location("profile", f"{sysconfig.get_path('stdlib')}/profile.py")
    _stdlib_profile = importlib.util.module_from_spec(_spec)
    sys.modules[__name__] = _stdlib_profile
    _spec.loader.exec_module(_stdlib_profile)
else:
    # Run as a tool: drop tools/ from the path before anything imports torch, for the same reason.
    from pathlib import Path

    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main(argv: list[str] | None = None) -> int:
    """``vidrcnn profile``'s main (imported here, not above: see the import guard)."""
    from vidrcnn.commands.profile import main as profile_main

    return profile_main(argv)


if __name__ == "__main__":
    from vidrcnn.cli import run_tool

    raise SystemExit(run_tool(main))
