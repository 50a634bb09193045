"""Just enough of torch.distributed: the same training code runs alone or under ``torchrun``."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sleuth.device import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job; ``world == 1`` means no process group."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when launched by ``torchrun`` (nccl on GPU, gloo on CPU)."""
    single = resolve_device(device)
    use_cuda = single.type == "cuda"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dev = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
        return DistInfo(dist.get_rank(), world, dev)
    dev = torch.device(
        "cuda" if use_cuda and device == "auto" else device if device != "auto" else "cpu"
    )
    return DistInfo(0, 1, dev)


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        dist.barrier()


def from_main(info: DistInfo, value: object) -> object:
    """Rank 0's ``value`` on every rank (a secret drawn once for the whole job)."""
    if info.world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_rows(info: DistInfo, rows: torch.Tensor) -> torch.Tensor:
    """Every rank's ``rows`` (equal sizes), in rank order; gradients flow to this rank's own.

    The other ranks' rows arrive as constants: each rank's backward pass then carries the
    gradient through its own rows only, and summing the ranks' gradients (``contrastive_loss``
    scales for DDP's average) gives the one-process gradient of the loss on the whole batch.
    """
    if info.world == 1:
        return rows
    parts = [torch.empty_like(rows) for _ in range(info.world)]
    dist.all_gather(parts, rows.detach().contiguous())
    parts[info.rank] = rows
    return torch.cat(parts)


def sync_batchnorm(info: DistInfo, model: torch.nn.Module) -> torch.nn.Module:
    """Batch norm over the global batch under DDP on CUDA; PyTorch's SyncBatchNorm refuses CPU
    modules, so on CPU (gloo) each rank normalises over its own slice."""
    if info.world > 1 and info.device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def teardown(info: DistInfo) -> None:
    if info.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
