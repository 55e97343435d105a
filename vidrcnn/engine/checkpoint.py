"""Training checkpoints: written atomically, read without unpickling arbitrary objects.

A checkpoint is a plain dict (see :data:`CHECKPOINT_KEYS`) that holds everything test and inference need: the weights,
the model's name, builder options (``config["model"]["kwargs"]``), class names and the preprocessing the model expects.
A run with ``train.ema_decay`` also stores the averaged weights (``ema``, same keys as ``model``) and says which of
the two test and inference use (``weights``: ``"ema"``); see :func:`checkpoint_weights`.
Loading uses ``torch.load(weights_only=True)``, so a file crafted to run code when unpickled is refused with a
:class:`~vidrcnn.errors.CheckpointError` before any of its code runs.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidrcnn.engine.config import Config, config_to_dict
from vidrcnn.engine.recipe import ema_state, load_ema_state
from vidrcnn.engine.state import TrainState
from vidrcnn.errors import CheckpointError, ConfigError

# What fit() writes. "optimizer", "scheduler", "scaler" and "rng" matter only to --resume.
CHECKPOINT_KEYS = (
    "model", "optimizer", "scheduler", "scaler", "epoch", "config", "model_name", "num_classes", "classes",
    "preprocess", "best_top1", "metrics",
)
# What fit() adds with train.ema_decay: the averaged weights, its update count (for --resume), the default weights.
EMA_KEYS = ("ema", "ema_updates", "weights")
# What model_from_checkpoint needs.
MODEL_KEYS = ("model", "model_name", "num_classes")
WEIGHTS = ("ema", "raw")  # which weights of a checkpoint test and inference load: the EMA or the trained ones

# Builder defaults that changed without changing the weights' names or shapes, so that a checkpoint cannot show
# which it was trained with: (the DEFAULTS_VERSION that changed it, the model-name prefixes it applies to, the
# option, its value before). fit() records the version it trained at ("defaults_version"); a checkpoint without
# one predates them all. model_from_checkpoint rebuilds each older checkpoint with the values it was trained with.
DEFAULT_CHANGES: tuple[tuple[int, tuple[str, ...], str, Any], ...] = (
    (1, ("rcn_gru_", "rcn_rnn_", "rcn_lstm_"), "activation", "tanh"),  # now ReLU (docs/reports/how_defaults_were_chosen.md)
    (1, ("rcn_", "cnn_lstm_"), "stem_downsample", "stride"),  # now the stem's later layers pool
    (1, ("rcn_", "cnn_lstm_"), "stem_frames", 3),  # now 5 frames (a shape change: it would fail, not mislead)
    (2, ("rcn_lstm_",), "coupled", False),  # now the coupled input-forget gate (three gates, the ConvGRU's widths)
    (2, ("rcn_mingru_",), "stem_frames", 5),  # now the strided 3-frame stem
    (2, ("rcn_mingru_",), "stem_downsample", "pool"),
)
DEFAULTS_VERSION = max(v for v, *_ in DEFAULT_CHANGES)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, fsync, then ``os.replace``.

    A process killed at any moment leaves either the previous checkpoint or the new one, never a truncated file.
    ``state`` must hold only tensors, numbers, strings, None and lists/tuples/dicts of them, so that
    :func:`load_checkpoint` can read it back with ``weights_only=True``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable; not possible on every platform/filesystem
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


# The lines torch.load puts around the cause of a failed weights_only load.
_TORCH_LOAD_ADVICE = ("Weights only load failed", "Please file an issue", "Check the documentation of torch.load")


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain containers only).

    Raises :class:`CheckpointError` naming the file when it is missing, unreadable, not a checkpoint, or holds pickled
    objects other than tensors and plain containers (such a file is refused and none of its code runs).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file" if not path.exists() else "not a file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        globals_ = [line for line in lines if "global" in line.lower() and "weights_only" not in line.lower()]
        if not globals_:  # the restricted unpickler met a malformed opcode: a damaged file, not a hostile one
            # torch wraps the cause (e.g. "Unsupported operand 35") in advice about weights_only: keep the cause
            detail = [line for line in lines if not line.startswith(_TORCH_LOAD_ADVICE)] or ["unpickling failed"]
            raise CheckpointError(path, f"corrupt or not a checkpoint ({detail[-1]})") from None
        # weights_only refuses any global that is not an allow-listed tensor/container type, e.g. a __reduce__ payload.
        raise CheckpointError(
            path, "refused to load: the file holds pickled objects other than tensors and plain containers "
            f"({globals_[-1].split(' Please ')[0]}); it may run code when unpickled"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a corrupt file fails in many ways (zip, pickle opcodes, EOF)
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(path, f"corrupt or not a checkpoint ({type(exc).__name__}: {msg})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(path, f"not a vidrcnn checkpoint (holds a {type(ckpt).__name__}, expected a dict)")
    return ckpt


def run_record(cfg: Config, *, classes: list[str], preprocess: dict[str, Any], train_videos: list[str],
               world_size: int) -> dict[str, Any]:
    """What every checkpoint of a run records about the run: its config, the model to rebuild and its classes, the
    builder defaults it trained at, how clips were prepared (``preprocess``), how many processes trained it, and
    the training videos (relative to ``data.root``: what tools/test.py checks a test set against)."""
    return {"config": config_to_dict(cfg), "model_name": cfg.model.name, "num_classes": len(classes),
            "classes": classes, "defaults_version": DEFAULTS_VERSION, "preprocess": preprocess,
            "world_size": world_size, "train_videos": train_videos}


def training_checkpoint(state: TrainState, record: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """The contents of a checkpoint after epoch ``state.epoch``: the weights, what ``--resume`` needs (optimiser,
    schedule, scaler, history, RNG state), the epoch's ``metrics``, the run's :func:`run_record`, and the EMA's
    average beside the raw weights, with which of them tests use (:func:`~vidrcnn.engine.recipe.ema_state`)."""
    return {"model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
            "scheduler": state.schedule.state_at(state.epoch), "scaler": state.scaler.state_dict(),
            "epoch": state.epoch, **record, "best_top1": state.best_top1, "metrics": metrics,
            "history": state.history, "rng": rng_state(), **ema_state(state.ema)}


def restore_training(state: TrainState, ckpt: dict[str, Any], path: Path, *, model_name: str,
                     classes: list[str]) -> None:
    """Put ``state`` back where the run of checkpoint ``ckpt`` (read from ``path``) was after its last epoch: the
    weights, optimiser, scaler, RNG, progress and EMA. A checkpoint of another model or other classes is refused."""
    if ckpt.get("model_name") != model_name or list(ckpt.get("classes", [])) != classes:
        raise CheckpointError(path, f"holds a {ckpt.get('model_name')!r} model for other classes or another "
                                    f"model than this config's {model_name!r}")
    state.model.load_state_dict(unwrap_state_dict(ckpt["model"]))
    state.optimizer.load_state_dict(ckpt["optimizer"])
    for group in state.optimizer.param_groups:  # train.cuda_graph: the learning rate lives beside the weights
        if isinstance(group["lr"], torch.Tensor):
            group["lr"] = group["lr"].to(group["params"][0].device)
    state.scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    state.epoch, state.best_top1, state.history = int(ckpt["epoch"]), float(ckpt["best_top1"]), list(ckpt["history"])
    if state.ema is not None:
        load_ema_state(state.ema, ckpt, path)


def rng_state() -> dict[str, Any]:
    """The RNG states a resumed run restores: torch's (CPU and CUDA) and ``random``'s."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def model_kwargs(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The builder options recorded in the checkpoint's config (``config["model"]["kwargs"]``), or ``{}``."""
    cfg = ckpt.get("config") or {}
    kwargs = (cfg.get("model") or {}).get("kwargs") or {} if isinstance(cfg, dict) else {}
    return dict(kwargs)


def unwrap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the ``module.`` (DDP) or ``_orig_mod.`` (torch.compile) prefixes a wrapped model's state_dict carries."""
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def checkpoint_weights(ckpt: dict[str, Any], weights: str | None = None) -> tuple[str, dict[str, torch.Tensor]]:
    """``(which, state_dict)``: the weights ``weights`` (``"ema"`` or ``"raw"``) of ``ckpt``.

    ``weights=None`` takes the checkpoint's own choice (``ckpt["weights"]``, ``"ema"`` when it was trained with
    ``train.ema_decay``); a checkpoint that does not say (written before EMA existed) gives its raw weights.
    ``"ema"`` from a checkpoint without an EMA is a :class:`CheckpointError`.
    """
    if weights is not None and weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS} or None, got {weights!r}")
    which = weights or ckpt.get("weights") or ("ema" if "ema" in ckpt else "raw")
    if which == "ema":
        if "ema" not in ckpt:
            raise CheckpointError(None, "holds no EMA weights (trained without train.ema_decay); use the raw weights")
        return "ema", ckpt["ema"]
    return "raw", ckpt["model"]


def model_from_checkpoint(ckpt: dict[str, Any], *, weights: str | None = None) -> nn.Module:
    """Rebuild the model from ``model_name``, ``num_classes`` and the config's model kwargs; load the weights.

    ``weights``: ``"ema"``, ``"raw"`` or None for the checkpoint's default (see :func:`checkpoint_weights`). Returns
    the model in eval mode on the CPU. Raises :class:`CheckpointError` (without a path: this sees only the dict;
    callers that know the file re-raise with it) when keys are missing, the model name is unknown or the weights do
    not fit.
    """
    from vidrcnn.models import get_model  # lazy: checkpoint I/O must not import every model family

    missing = [k for k in MODEL_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(None, f"not a vidrcnn training checkpoint (missing {', '.join(missing)})")
    name, num_classes = ckpt["model_name"], int(ckpt["num_classes"])
    state = unwrap_state_dict(checkpoint_weights(ckpt, weights)[1])
    kwargs = model_kwargs(ckpt)
    if name.startswith("rcn_") and "preact_norm" not in kwargs and not any(".input_norm." in k for k in state):
        # Trained before the rcn builders' defaults gained input BatchNorm and residual layers: rebuild
        # it as it was.
        kwargs = {"preact_norm": None, "residual": any(k.startswith("skips.") for k in state), **kwargs}
    if "stem_frames" not in kwargs and (name.startswith("rcn_") and any(k.startswith("stem.module.") for k in state)
                                        or name.startswith("cnn_lstm_") and not any(k.startswith("stem.") for k in state)):
        # Trained before the small stem's first layer saw 3 frames: a per-frame stem.
        kwargs = {**kwargs, "stem_frames": 1}
    version = ckpt.get("defaults_version", 0)
    for changed_at, prefixes, key, before in DEFAULT_CHANGES:
        if version < changed_at and name.startswith(prefixes) and key not in kwargs:
            kwargs = {**kwargs, key: before}
    try:
        model = get_model(name, num_classes=num_classes, **kwargs)
    except ConfigError as exc:
        raise CheckpointError(None, f"cannot rebuild model: {exc.cause}") from None
    except TypeError as exc:
        raise CheckpointError(None, f"cannot rebuild model {name!r}: {exc}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        msg = " ".join(str(exc).split())[:400]
        raise CheckpointError(None, f"weights do not fit model {name!r} with {num_classes} classes ({msg})") from None
    return model.eval()
