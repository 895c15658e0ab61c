"""Multi-process training (`torchrun --nproc_per_node N`): which rank and device a process is, and
the gradient averaging and weight broadcast the trainer does instead of DistributedDataParallel
(R1 needs a double backward through the discriminator, which DDP does not support; StyleGAN3 syncs
gradients the same way). Gloo on CPU, NCCL on GPU; one process is a world of one."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    device: str = "cpu"  # this process's device: under torchrun, cuda:LOCAL_RANK

    @property
    def main(self) -> bool:
        return self.rank == 0


def rank_device(device: str, local_rank: int) -> str:
    """The device of the torchrun process with LOCAL_RANK `local_rank`: plain "cuda" becomes
    cuda:LOCAL_RANK (so every rank has a GPU of its own); cpu and an explicit cuda:N stay."""
    return f"cuda:{local_rank}" if device == "cuda" else device


def init_distributed(device: str) -> Rank:
    """Join the process group when started by torchrun (each rank pinned to its own GPU); a single
    process otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Rank(device=device)
    device = rank_device(device, int(os.environ.get("LOCAL_RANK", "0")))
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))  # NCCL and torch.device("cuda") use the current device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Rank(dist.get_rank(), dist.get_world_size(), device)


def sync_grads(params, rank: Rank) -> None:
    """Average the gradients of `params` over the ranks."""
    if rank.world == 1:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(rank.world)


def broadcast(module: torch.nn.Module, rank: Rank) -> None:
    """Every rank starts from rank 0's weights and buffers."""
    if rank.world > 1:
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, 0)


def mean_over_ranks(value: torch.Tensor, rank: Rank) -> torch.Tensor:
    """`value` averaged over the ranks (in place)."""
    if rank.world > 1:
        dist.all_reduce(value)
        value /= rank.world
    return value
