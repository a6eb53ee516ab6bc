"""torchrun / DDP set-up from the environment (pipeline spec §8): LOCAL_RANK, RANK, WORLD_SIZE, MASTER_ADDR/PORT.

NCCL on GPU, gloo on CPU; several nodes through torchrun's own rendezvous options. The rank never comes from a
``--local_rank`` argument (torch ≥ 2 launchers pass ``--local-rank`` or only the environment).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto", timeout_minutes: float = 30.0) -> Dist:
    """Initialise the process group when launched by torchrun with more than one process; a collective that waits
    longer than ``timeout_minutes`` (``--ddp_timeout``) fails the run instead of hanging."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=timedelta(minutes=timeout_minutes))
    return Dist(rank, local, world, dev)


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
