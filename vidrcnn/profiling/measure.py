"""Measurements of one callable: latency, peak memory, FLOPs, and dependent steps on the critical path."""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class Timing:
    """Wall-clock latency of repeated calls, in milliseconds."""

    median_ms: float
    q25_ms: float
    q75_ms: float
    min_ms: float
    max_ms: float
    iters: int

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}


def synchronize(device: torch.device | str) -> None:
    """Wait for queued kernels: CUDA work is asynchronous, a host clock alone would time the launch only."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], object], *, device: torch.device | str = "cpu", warmup: int = 2, iters: int = 10,
            min_time_s: float = 0.0) -> Timing:
    """Time ``fn()`` after ``warmup`` untimed calls; at least ``iters`` calls and at least ``min_time_s`` seconds.

    CUDA calls are timed with events around each call, after a synchronisation; CPU calls with ``perf_counter``.
    """
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    synchronize(device)
    samples: list[float] = []
    start_all = time.perf_counter()
    while len(samples) < iters or time.perf_counter() - start_all < min_time_s:
        if device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(begin.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return Timing(statistics.median(samples), q[0], q[2], min(samples), max(samples), len(samples))


def forward_backward(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """A call for :func:`time_fn`: zero the gradients, run ``model(x)`` (the first output of a tuple, as recurrent
    layers return ``(out, state)``) and back-propagate the mean square of it."""
    def run() -> None:
        model.zero_grad(set_to_none=True)
        out = model(x)
        (out[0] if isinstance(out, tuple) else out).square().mean().backward()
    return run


def count_kernels(fn: Callable[[], object], device: torch.device | str = "cpu") -> tuple[int, str]:
    """``(count, what)`` for one call of ``fn`` under ``torch.profiler``: on CUDA the kernels launched (what
    launch-bound time is made of), elsewhere the operators dispatched at the top level (``aten::`` calls not made
    by another one), the nearest CPU analogue."""
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.device(device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        fn()
        synchronize(device)
    events = prof.events()
    if cuda:
        return sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA), "CUDA kernels"
    return sum(1 for e in events if e.name.startswith("aten::") and e.cpu_parent is None), "CPU operators"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the lifetime peak is the best the OS offers
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


@contextlib.contextmanager
def peak_memory(device: torch.device | str) -> Iterator[dict[str, float]]:
    """Yield a dict filled on exit with ``peak_mem_mb`` and ``peak_mem_delta_mb`` (over the level at entry).

    CUDA: the caching allocator's peak of allocated bytes. CPU: the process's resident set, sampled every
    millisecond by a thread (the kernel keeps only a lifetime peak, useless for one model among several).
    """
    device = torch.device(device)
    result: dict[str, float] = {}
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        yield result
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
    else:
        base = peak_box = _rss_bytes()
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak_box
            while not stop.wait(0.001):
                peak_box = max(peak_box, _rss_bytes())

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield result
        finally:
            stop.set()
            thread.join()
        peak = max(peak_box, _rss_bytes())
    result["peak_mem_mb"] = peak / 2**20
    result["peak_mem_delta_mb"] = (peak - base) / 2**20


@contextlib.contextmanager
def held_for_backward() -> Iterator[dict[str, float]]:
    """Yield a dict filled on exit with ``held_for_backward_mb``: the bytes of the distinct tensors that autograd saved
    for backward while the block ran (parameters left out: they are held anyway). Activations that
    ``torch.utils.checkpoint`` will recompute are not saved, so this is what checkpointing cuts; unlike a peak of the
    resident set it does not depend on the allocator, so it is the same on every machine."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not (t.is_leaf and t.requires_grad):
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    result: dict[str, float] = {}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield result
    result["held_for_backward_mb"] = sum(storages.values()) / 2**20


@contextlib.contextmanager
def tensor_peak_memory() -> Iterator[dict[str, float]]:
    """Yield a dict filled on exit with ``tensor_peak_mb``: the peak, over the block, of the bytes of live CPU
    tensors allocated inside it, from the profiler's allocation events. What the step's tensors need at their peak,
    without the heap's caching and fragmentation that the resident set adds (on CUDA, :func:`peak_memory` already
    reads the allocator)."""
    from torch._C._autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    result: dict[str, float] = {}
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        yield result
    events = sorted((e for e in prof.profiler.kineto_results.events()
                     if e.name() == "[memory]" and e.device_type() == DeviceType.CPU),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    result["tensor_peak_mb"] = peak / 2**20


_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _rnn_flops(module: nn.RNNBase, batch: int, steps: int) -> int:
    # torch's counter sees no matmul inside the fused RNN kernels (aten.lstm, cuDNN): count them by hand.
    gates = _GATES[module.mode] * module.hidden_size
    dirs = 2 if module.bidirectional else 1
    total = 0
    for layer in range(module.num_layers):
        in_size = module.input_size if layer == 0 else module.hidden_size * dirs
        total += dirs * 2 * batch * steps * gates * (in_size + module.hidden_size)
    return total


def _rnn_shape(module: nn.RNNBase, x: torch.Tensor) -> tuple[int, int]:
    if x.dim() == 2:
        return 1, x.size(0)
    return (x.size(0), x.size(1)) if module.batch_first else (x.size(1), x.size(0))


def count_flops(fn: Callable[[], object], model: nn.Module | None = None) -> int:
    """FLOPs of ``fn()`` by ``torch.utils.flop_counter`` (convolutions and matmuls), plus the fused RNN kernels of
    ``model``'s ``nn.LSTM``/``nn.GRU``/``nn.RNN`` modules, which that counter cannot see inside."""
    seen: list[tuple[nn.RNNBase, int, int]] = []
    hooks = []
    for module in model.modules() if model is not None else ():
        if isinstance(module, nn.RNNBase):
            hooks.append(module.register_forward_pre_hook(
                lambda m, args: seen.append((m, *_rnn_shape(m, args[0])))))
    try:
        with FlopCounterMode(display=False) as counter:
            fn()
    finally:
        for h in hooks:
            h.remove()
    total = counter.get_total_flops()
    for module, batch, steps in seen:
        if _counted_by_torch(module) == 0:
            total += _rnn_flops(module, batch, steps)
    return int(total)


def _counted_by_torch(module: nn.RNNBase) -> int:
    """What torch's counter reports for this RNN on a tiny input: 0 where the kernel is opaque to it."""
    p = next(module.parameters())
    x = torch.zeros(2, 2, module.input_size, device=p.device, dtype=p.dtype)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops()


class StepCounter:
    """Counts the dependent time steps that a forward pass runs, as executed (stacked layers add up).

    A module that defines ``critical_path(num_steps) -> int`` reports its own count; a layer running a recurrent
    cell (``vidrcnn.layers.ConvRecurrent``: a ``cell`` with a ``step``) asks its cell, and a cell without
    ``critical_path`` counts ``T`` (a parallel scan reports ``O(log T)``). ``nn.LSTM``/``nn.GRU``/``nn.RNN`` count
    ``T`` per layer. Every other module counts nothing: a convolution over time is one step however long the clip.
    """

    def __init__(self, model: nn.Module, time_of: Callable[[nn.Module, torch.Tensor], int] | None = None):
        self.steps = 0
        self._hooks = []
        for module in model.modules():
            if isinstance(module, nn.RNNBase):
                self._hooks.append(module.register_forward_pre_hook(self._rnn_hook))
            elif callable(getattr(module, "critical_path", None)) or _recurrent_cell(module) is not None:
                self._hooks.append(module.register_forward_pre_hook(self._layer_hook))
        self._time_of = time_of or _time_axis

    def _rnn_hook(self, module: nn.RNNBase, args: tuple) -> None:
        self.steps += module.num_layers * _rnn_shape(module, args[0])[1]

    def _layer_hook(self, module: nn.Module, args: tuple) -> None:
        t = self._time_of(module, args[0])
        owner = module if callable(getattr(module, "critical_path", None)) else _recurrent_cell(module)
        # A cell that does not say otherwise (rnn, rcl, gru, lstm) takes one dependent step per frame.
        self.steps += int(owner.critical_path(t)) if callable(getattr(owner, "critical_path", None)) else t

    def close(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()


@contextlib.contextmanager
def count_steps(model: nn.Module) -> Iterator[StepCounter]:
    """``with count_steps(model) as c: model(x)`` leaves the dependent steps of that pass in ``c.steps``."""
    counter = StepCounter(model)
    try:
        yield counter
    finally:
        counter.close()


def _time_axis(module: nn.Module, x: torch.Tensor) -> int:
    # The package's recurrent layers take (B, C, T, H, W) unless they say otherwise with a `time_dim` attribute.
    return x.size(getattr(module, "time_dim", 2))


def _recurrent_cell(module: nn.Module) -> nn.Module | None:
    cell = getattr(module, "cell", None)
    return cell if isinstance(cell, nn.Module) and callable(getattr(cell, "step", None)) else None
