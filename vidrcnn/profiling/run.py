"""Profile models against sequence length: one row per (model, T) with latency, throughput, FLOPs, memory, steps."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidrcnn.errors import ConfigError
from vidrcnn.layers import compile_steps
from vidrcnn.profiling.measure import count_flops, count_steps, peak_memory, synchronize, time_fn

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("rcn_gru_s", "rcn_lstm_s", "rcn_mingru_s", "cnn_lstm_s", "c3d_s", "frame_avg_s")
DEFAULT_LENGTHS = (4, 8, 16, 32, 64)


@dataclass
class ProfileOptions:
    """How to run each measurement. ``size=None`` gives each model its natural input (``model.input_size``)."""

    batch: int = 1
    device: str = "cpu"
    size: int | None = None
    warmup: int = 2
    iters: int = 10
    min_time_s: float = 0.0
    train: bool = False          # also time forward + backward
    amp: bool = False            # bf16 autocast
    compile: bool = False        # torch.compile the model (slow to start on CPU)
    compile_mode: str | None = None  # torch.compile's mode; "reduce-overhead" replays CUDA graphs on a GPU
    compile_step: bool = False   # compile each recurrent cell's step only (layers.compile_steps): bounded compile time
    channels_last: bool = False
    stream: bool = True          # time one new frame with carried state for causal models
    num_classes: int = 10

    def __post_init__(self) -> None:
        if self.train and self.amp and torch.device(self.device).type == "cpu":
            raise ConfigError("--amp --train", CPU_AMP_TRAIN)


# PyTorch 2.14.1 on the CPU: the backward of a Conv3d(3, 16, (5, 3, 3)) + BatchNorm3d under bf16 autocast on a
# (4, 3, 6, 112, 112) input segfaults or corrupts the heap ("free(): invalid next size"); smaller shapes may corrupt
# it silently. Training is timed under bf16 autocast only on CUDA (tests/test_profiling.py runs the repro).
CPU_AMP_TRAIN = ("bf16 autocast in training is refused on the CPU: PyTorch's bf16 backward of a Conv3d + BatchNorm3d "
                 "corrupts the heap there (free(): invalid next size); time training in fp32 on the CPU (no --amp), "
                 "or with --amp on --device cuda")


def natural_size(name: str, model: nn.Module) -> int:
    """The frame side a model is built for: its ``input_size`` attribute if it has one, else 64 for ``_s`` models,
    32 for Liang & Hu's CIFAR-sized ``rcnn_*``, 112 for the rest."""
    size = getattr(model, "input_size", None)
    if isinstance(size, int):
        return size
    if isinstance(size, Sequence) and size:
        return int(size[-1])
    if name.startswith("rcnn_"):
        return 32
    return 64 if name.endswith("_s") else 112


def to_channels_last(model: nn.Module) -> nn.Module:
    """Channels-last weights: 4-D ones for the 2-D convolutions, 3-D ones for the 3-D convolutions."""
    for p in model.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
        elif p.dim() == 5:
            p.data = p.data.contiguous(memory_format=torch.channels_last_3d)
    return model


def _autocast(opts: ProfileOptions) -> contextlib.AbstractContextManager:
    # bf16 on both devices: fp16 on CPU is slow and needs a scaler for training.
    if not opts.amp:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(opts.device).type, dtype=torch.bfloat16)


def _forward(fn: Callable, x: torch.Tensor, opts: ProfileOptions) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad(), _autocast(opts):
            return fn(x)
    return run


def _train_step(fn: Callable, model: nn.Module, x: torch.Tensor, opts: ProfileOptions) -> Callable[[], object]:
    target = torch.zeros(x.size(0), dtype=torch.long, device=x.device)

    def run() -> None:
        model.zero_grad(set_to_none=True)
        with _autocast(opts):
            loss = F.cross_entropy(fn(x).float(), target)
        loss.backward()
    return run


def _stream_frame(model: nn.Module, x: torch.Tensor, opts: ProfileOptions) -> Callable[[], object]:
    """One new frame through ``model.stream`` with state carried from ``x`` (the clip seen so far)."""
    with torch.no_grad(), _autocast(opts):
        _, state = model.stream(x, None)
    frame = x[:, :, -1:].contiguous()

    def run() -> object:
        with torch.no_grad(), _autocast(opts):
            return model.stream(frame, state)
    return run


def _compiled(opts: ProfileOptions) -> str | bool:
    """What was compiled: ``"step"`` (each cell's step), the whole model (True, or its mode), or nothing (False)."""
    if opts.compile:
        return opts.compile_mode or True
    return "step" if opts.compile_step else False


def profile_model(name: str, model: nn.Module, lengths: Sequence[int], opts: ProfileOptions) -> list[dict]:
    """Rows for one model, one per length; a length the model cannot take gives a row with ``error`` set."""
    device = torch.device(opts.device)
    model = model.to(device).eval()
    if opts.channels_last:
        to_channels_last(model)
    if opts.compile_step:
        compile_steps(model)
    fn = torch.compile(model, mode=opts.compile_mode) if opts.compile else model
    size = opts.size or natural_size(name, model)
    params = sum(p.numel() for p in model.parameters())
    causal = bool(getattr(model, "is_causal", False)) and callable(getattr(model, "stream", None))
    stream_ms: float | None = None
    rows = []
    for t in lengths:
        row: dict = {"model": name, "T": t, "batch": opts.batch, "height": size, "width": size,
                     "device": device.type, "dtype": "bf16" if opts.amp else "fp32", "compile": _compiled(opts),
                     "channels_last": opts.channels_last, "params": params, "causal": causal, "error": ""}
        x = torch.randn(opts.batch, 3, t, size, size, device=device)
        if opts.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        try:
            forward = _forward(fn, x, opts)
            first = time.perf_counter()
            with peak_memory(device) as mem:  # the first call: on CPU later calls reuse the heap it grew
                forward()
            synchronize(device)
            row["first_call_s"] = time.perf_counter() - first  # with --compile: the compile time, about
            flops = count_flops(_forward(model, x, opts), model)  # eager: the counter cannot see into compiled code
            with count_steps(model) as steps:  # its own pass: count_flops runs RNN modules alone on a probe input
                _forward(model, x, opts)()
            timing = time_fn(forward, device=device, warmup=opts.warmup, iters=opts.iters,
                             min_time_s=opts.min_time_s)
            row.update(flops=flops, gflops=flops / 1e9, seq_steps=steps.steps, **timing.as_dict("latency_"), **mem)
            sec = timing.median_ms / 1e3
            row.update(clips_per_s=opts.batch / sec, frames_per_s=opts.batch * t / sec,
                       ms_per_gflop=timing.median_ms / max(flops / 1e9, 1e-12))
            if opts.train:
                model.train()
                train = _train_step(fn, model, x, opts)
                with peak_memory(device) as train_mem:  # backward's saved activations: what checkpointing cuts
                    train()
                row.update({f"train_{k}": v for k, v in train_mem.items()})
                row["train_median_ms"] = time_fn(train, device=device, warmup=opts.warmup,
                                                 iters=opts.iters).median_ms
                model.eval()
            if causal and opts.stream and stream_ms is None:
                # Independent of how long the clip seen so far was: measured once, at the first length.
                stream_ms = time_fn(_stream_frame(model, x, opts), device=device, warmup=opts.warmup,
                                    iters=max(opts.iters, 20)).median_ms
            # The cost of one new frame: with carried state for a causal model, otherwise re-running the T window.
            row["new_frame_ms"] = stream_ms if causal and opts.stream else timing.median_ms
            row["new_frame_mode"] = "stream" if causal and opts.stream else "window"
        except (RuntimeError, ValueError) as exc:  # e.g. a clip shorter than the model's temporal pooling
            log.warning("%s at T=%d: %s", name, t, exc)
            row["error"] = str(exc).splitlines()[0][:200]
        finally:
            synchronize(device)
        rows.append(row)
    return rows


def profile_models(names: Sequence[str], lengths: Sequence[int], opts: ProfileOptions,
                   build: Callable[[str], nn.Module] | None = None,
                   progress: Callable[[str], None] | None = None) -> list[dict]:
    """Build each model by name (``vidrcnn.models.get_model`` unless ``build`` is given) and profile it."""
    if build is None:
        from vidrcnn.models import get_model

        def build(name: str) -> nn.Module:
            return get_model(name, num_classes=opts.num_classes)
    rows = []
    for name in names:
        torch.manual_seed(0)
        if progress:
            progress(name)
        rows += profile_model(name, build(name), lengths, opts)
    return rows
