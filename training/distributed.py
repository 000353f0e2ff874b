"""Multi-process training via torchrun: process group from the environment, DDP wrapping.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; a plain `python -m training.train` has none of
them and runs as a single process with no process group at all. NCCL is used on CUDA, gloo on
CPU (so the multi-process path is testable on any machine).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device_pref: str = "auto") -> DistInfo:
    """Join the torchrun process group (if any) and pick this process's device."""
    use_cuda = torch.cuda.is_available() if device_pref == "auto" else device_pref == "cuda"
    if use_cuda and not torch.cuda.is_available():
        from qsci.errors import QSCIError

        raise QSCIError("device cuda requested but CUDA is not available")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        if use_cuda:
            dist.init_process_group(backend, device_id=device)
        else:
            dist.init_process_group(backend)
    return DistInfo(rank=rank, local_rank=local, world=world, device=device)


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def any_flag(flag: bool, info: DistInfo) -> bool:
    """True on every rank if it is true on any rank (stop requests must be agreed on)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_int(value: int, info: DistInfo) -> int:
    """Rank 0's value on every rank (e.g. a step count decided from rank 0's clock)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=info.device)
    dist.broadcast(t, src=0)
    return int(t.item())


def wrap(model: torch.nn.Module, info: DistInfo, find_unused: bool) -> torch.nn.Module:
    """DDP on several processes (broadcasts rank 0's parameters and buffers); the model otherwise."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [info.local_rank] if info.device.type == "cuda" else None
    return DDP(model, device_ids=ids, find_unused_parameters=find_unused)
