"""torchrun/DDP plumbing: which rank am I, and the few collective calls the loop needs.

A single-process run takes the same code path with world size 1, so nothing here
is exercised only on multi-GPU machines.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
import torch.distributed as dist


@dataclasses.dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    enabled: bool = False  # in a process group: DDP wrappers and collectives are live

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_from_env(device_option: str) -> Dist:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, ...).

    A plain `python -m train` has no RANK and runs without one. Under torchrun even one process
    joins a group and trains through DDP, so `torchrun --nproc_per_node=1` runs the NCCL code path
    on a one-GPU machine.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "RANK" not in os.environ and world <= 1:
        return Dist()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_nccl = device_option != "cpu" and torch.cuda.is_available()
    if use_nccl:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_nccl else "gloo")
    return Dist(rank=rank, world=world, local_rank=local_rank, enabled=True)


def any_flag(ctx: Dist, flag: bool, device: torch.device) -> bool:
    """True when any rank raised the flag, so every rank stops at the same step.

    A no-op without a process group; with one it is a collective plus a host sync, so the loop calls
    it once per metrics row, never per step.
    """
    if not ctx.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather(ctx: Dist, obj: Any) -> list[Any]:
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def broadcast(ctx: Dist, obj: Any) -> Any:
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: Dist) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: Dist) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
