"""The run folder: what training writes there (:data:`RUN_FILES`), and the check, before any work, that a run may
start or resume in it (:func:`check_run_dir`): a new run needs an empty folder, a resumed one the same config
except :data:`RESUMABLE_KEYS`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidrcnn.engine.checkpoint import load_checkpoint
from vidrcnn.engine.config import Config, config_to_dict, load_config
from vidrcnn.engine.logging import CURVES_FILE, METRICS_FILE
from vidrcnn.errors import CheckpointError, ConfigError, OutputError, VidrcnnError

LAST, BEST = "checkpoint_last.pt", "checkpoint_best.pt"
# What a run writes into its folder; a folder holding anything else is not a run folder (see check_run_dir).
RUN_FILES = frozenset({LAST, BEST, "config.yaml", METRICS_FILE, CURVES_FILE, "tb", "metrics.jsonl.tmp", "curves.tmp.png"})


def _is_run_file(name: str) -> bool:
    """A file training writes, or the temporary file of one that a kill left behind (``.checkpoint_last.pt.*.tmp``)."""
    return name in RUN_FILES or (name.startswith((f".{LAST}.", f".{BEST}.")) and name.endswith(".tmp"))
# Config keys that may differ on --resume by design: more epochs to extend a run, how often to validate, where the
# data now lives, how many loader workers, how many unreadable videos to accept, which device. Anything else would
# make the run's record false.
RESUMABLE_KEYS = ("train.epochs", "train.eval_every", "data.root", "data.split_dir", "data.list_file",
                  "data.classes_file", "data.num_workers", "data.max_unreadable", "train.device")


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The dotted keys whose values differ between two :func:`config_to_dict` trees, as ``{key: (old, new)}``."""
    a, b = _flat(old), _flat(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _same_config(cfg: Config, out_dir: Path) -> bool:
    """Whether ``out_dir/config.yaml`` is this very config (a run killed before its first checkpoint)."""
    try:
        return load_config(out_dir / "config.yaml") == cfg
    except (VidrcnnError, OSError):
        return False


def check_run_dir(cfg: Config, out_dir: Path, resume: bool) -> dict[str, tuple[Any, Any]]:
    """Refuse, before any work and before anything is written, a run folder that training must not write into.

    Without ``resume`` the folder must be missing or empty (an existing run is continued with ``--resume``, never
    restarted over). With ``resume`` and a checkpoint there, the resolved config must equal the checkpoint's except
    :data:`RESUMABLE_KEYS`; the allowed changes are returned (and recorded in the next line of ``metrics.jsonl``).
    With ``resume`` and no checkpoint, the folder may hold only a run's own files (:data:`RUN_FILES`, and a
    ``config.yaml`` only when it is this same config).
    """
    last = out_dir / LAST
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(out_dir, "is a file, not a run folder")
    entries = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else []
    if not resume:
        if last.exists():
            raise CheckpointError(last, "a run already exists here; pass --resume to continue it or choose another "
                                        "--out")
        if entries:
            raise OutputError(out_dir, f"is not empty ({', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''}"
                                       "); choose another --out (a training run starts in an empty folder)")
        return {}
    if not last.exists():
        foreign = [e for e in entries if not _is_run_file(e) or (e == "config.yaml" and not _same_config(cfg, out_dir))]
        if foreign:
            raise OutputError(out_dir, f"has no checkpoint to resume and holds files that are not a run's "
                                       f"({', '.join(foreign[:3])}); choose another --out")
        return {}
    ckpt = load_checkpoint(last)
    old = ckpt.get("config") or {}
    changes = config_changes(old, config_to_dict(cfg))
    # A key the checkpoint's config lacks (added to vidrcnn after the run started) is no change at its default.
    default, recorded = _flat(config_to_dict(Config())), _flat(old)
    changes = {k: v for k, v in changes.items() if k in recorded or k not in default or v[1] != default[k]}
    refused = {k: v for k, v in changes.items() if k not in RESUMABLE_KEYS}
    if refused:
        listed = ", ".join(f"{k} ({was!r} -> {now!r})" for k, (was, now) in refused.items())
        raise ConfigError(last, f"--resume with a config that differs from the run's: {listed}; only "
                                f"{', '.join(RESUMABLE_KEYS)} may change on resume (start a new run with another "
                                "--out for anything else)")
    return changes
