"""Distributed data parallel plumbing for ``torchrun``: process-group set-up, reductions, an unpadded eval sampler.

Launched by ``torchrun --nproc_per_node=N`` (or ``python -m torch.distributed.run``), each process reads ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment and joins a process group (NCCL on GPUs, gloo on CPU). Launched
plainly, everything here degrades to a single process: reductions return their input, rank 0 is the only rank.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from vidrcnn.errors import ConfigError

CPU = torch.device("cpu")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = CPU

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


SINGLE = DistInfo()  # the plain, single-process run


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def resolve_device(device: str | torch.device, where: str = "--device") -> torch.device:
    """``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a torch.device, checked before any
    work: a GPU that torch cannot see is a :class:`~vidrcnn.errors.ConfigError` naming ``where``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(where, f"unknown device {device!r} (auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(where, f"{device} requested but torch sees no GPU (torch {torch.__version__}, CUDA "
                                     f"build {torch.version.cuda or 'none'})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(where, f"{device} requested but torch sees {torch.cuda.device_count()} GPU(s)")
    elif dev.type != "cpu":
        raise ConfigError(where, f"unsupported device {device!r} (auto, cpu, cuda or cuda:N)")
    return dev


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun and pick this process's device.

    ``device``: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``. Under torchrun each process uses
    ``cuda:LOCAL_RANK``.
    """
    use_cuda = resolve_device(device, "train.device").type == "cuda"
    if not launched_by_torchrun():
        return DistInfo(device=torch.device("cuda") if use_cuda else torch.device("cpu"))
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local, torch.device("cuda", local) if use_cuda else torch.device("cpu"))


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``values`` (float64 on CPU is fine for gloo; moved to the device for NCCL) across ranks."""
    if not info.distributed:
        return values
    out = values.to(info.device)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(values.device)


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` without a process group."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...`` of ``num_samples``: each sample on exactly one rank, none repeated.

    For evaluation. ``DistributedSampler`` pads the last round with repeated samples so every rank gets the same
    count, which would count those test videos twice; here ranks may differ by one item instead.
    """

    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1):
        self.num_samples, self.rank, self.world_size = num_samples, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.num_samples, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.num_samples, self.world_size))
