"""One exception type per failure family. Each names the file it concerns and the cause.

Tools catch ``VidrcnnError`` and turn it into one ``error: ...`` line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import os


class VidrcnnError(Exception):
    """Base of every error vidrcnn raises on purpose."""


class _PathError(VidrcnnError):
    def __init__(self, path: str | os.PathLike | None, cause: str | None = None):
        if cause is None:  # rebuilt from one message: how torch's DataLoader re-raises an error from a worker
            path, cause = None, _original_message(os.fspath(path) if path is not None else "")
        self.path = None if path is None else os.fspath(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}" if self.path is not None else cause)


def _original_message(text: str) -> str:
    """The error's own message out of a re-raised worker error ("Caught DatasetError in DataLoader worker process 0.
    Original Traceback ... vidrcnn.errors.DatasetError: <path>: <cause>"), so that a tool still prints one line."""
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    name, sep, message = last.partition(": ")
    return message if sep and name.rpartition(".")[2].endswith("Error") else last


class VideoDecodeError(_PathError):
    """A video cannot be opened or decoded (missing, not a video, truncated, corrupt, no video stream)."""


class DatasetError(_PathError):
    """A dataset folder, split file or annotation list is malformed or inconsistent."""


class ConfigError(_PathError):
    """A config file or a command-line override is invalid."""


class CheckpointError(_PathError):
    """A checkpoint is missing, corrupt, unsafe or incompatible."""


class OutputError(_PathError):
    """An output path cannot be written, or writing it would replace a file the user did not ask to replace."""


class DecordUnsafe(VideoDecodeError):
    """A readable video that decord would decode wrongly (frames reordered): use PyAV for it."""


class ExportError(VidrcnnError):
    """A model that cannot be exported, or an export that does not match PyTorch; names the part that failed."""


class DivergenceError(VidrcnnError):
    """The loss became NaN or infinite; the message says at which epoch and step."""
