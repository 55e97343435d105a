"""The one rule every tool that writes follows: check the output before the long work starts, never replace a file
the user did not ask to replace, never leave a half-written file.

- :func:`check_output_file`: the path is not a folder, its folder exists and is writable, it is not one of the
  inputs (the same file after resolving links, whatever the flags), and an existing file is replaced only with
  ``overwrite=True`` or when ``replaceable(path)`` recognises it as this tool's own output (a generated report
  with its header, a probe cache), which the tool rewrites by design.
- :func:`check_output_dir`: a folder to write into is missing, empty, or recognised by ``replaceable``.
- :func:`atomic_output`: write to a temporary file beside the target, rename it over the target at the end, so an
  interrupted run leaves the old file (or nothing), never a half file.

Each refusal is an :class:`~vidrcnn.errors.OutputError` naming the path and the cause, which the tools print as
one ``error:`` line.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from vidrcnn.errors import OutputError

Replaceable = Callable[[Path], bool]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (or cannot be read): compare the resolved names
        return a.resolve() == b.resolve()


def check_output_file(path: str | os.PathLike, *, overwrite: bool = False,
                      inputs: Iterable[str | os.PathLike] = (), replaceable: Replaceable | None = None,
                      flag: str = "--overwrite") -> Path:
    """``path`` as a Path once it may be written (see the module doc); ``flag`` is named in the refusal."""
    path = Path(path)
    for source in inputs:
        if _same_file(path, Path(source)):
            raise OutputError(path, "is an input of this run; refusing to write over it (choose another output)")
    if path.is_dir():
        raise OutputError(path, "is a folder, not a file name")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise OutputError(path, f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(path, f"output folder {folder} is not writable")
    if (path.exists() or path.is_symlink()) and not overwrite and not (replaceable and replaceable(path)):
        raise OutputError(path, f"already exists; pass {flag} to replace it")
    return path


def check_output_dir(path: str | os.PathLike, *, overwrite: bool = False, replaceable: Replaceable | None = None,
                     flag: str = "--overwrite", what: str = "") -> Path:
    """``path`` as a Path once it may be written into: missing (its nearest existing parent writable), empty, or
    recognised by ``replaceable``; anything else only with ``overwrite``. ``what`` says what it holds."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(path, "is a file, not a folder")
    if path.is_dir():
        if any(path.iterdir()) and not overwrite and not (replaceable and replaceable(path)):
            raise OutputError(path, f"is not empty{' and is not ' + what if what else ''}; pass {flag} to write "
                                    "into it anyway, or choose another folder")
        probe = path
    else:
        probe = path.absolute().parent
        while not probe.exists():
            probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise OutputError(path, f"{probe} is not writable")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same folder, same suffix, so writers that pick a format from the
    suffix still do); on success it replaces ``path`` in one rename, on any error it is deleted."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.absolute().parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
