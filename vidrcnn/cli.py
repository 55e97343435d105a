"""What every tool shares: package errors become one ``error: ...`` line on stderr and exit code 2."""

from __future__ import annotations

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
