"""Data-parallel training on torch.distributed.

Each process holds the whole model and a shard of the data (DataLoader(rank=, world_size=)),
runs its own hand-written forward and backward, then the gradients are averaged across
processes with an all-reduce (gloo on CPU, NCCL on GPU), so every optimizer steps in lockstep.
With equal shards, the average of the shards' mean-loss gradients is the full batch's.

    torchrun --nproc-per-node 2 -m handgrad train --data digits --distributed
"""

from __future__ import annotations

import hashlib
import os

import torch
import torch.distributed as dist

from handgrad.errors import UsageError
from handgrad.module import Module


def init(backend: str | None = None) -> tuple[int, int]:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR, ...).

    Returns (rank, world_size). gloo unless CUDA is available and backend is not given.
    """
    if not dist.is_available():
        raise UsageError("distributed: this torch build has no torch.distributed")
    if not dist.is_initialized():
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            raise UsageError(
                "distributed: RANK and WORLD_SIZE are not set; start the run with "
                "torchrun --nproc-per-node N -m handgrad train ... --distributed"
            )
        dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"))
    return dist.get_rank(), dist.get_world_size()


def rank_and_world_size() -> tuple[int, int]:
    """(rank, world_size), or (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _signature(model: Module) -> str:
    text = ";".join(f"{n}:{tuple(t.shape)}:{t.dtype}" for n, t in model.state_dict().items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_same_model(model: Module) -> None:
    """Stop with a clear error when the processes do not hold the same architecture."""
    _, world = rank_and_world_size()
    if world == 1:
        return
    signatures: list[str | None] = [None] * world
    dist.all_gather_object(signatures, _signature(model))
    if len(set(signatures)) != 1:
        raise UsageError(
            f"distributed: the processes hold different models (parameter "
            f"signatures by rank: {signatures}); build the same model everywhere"
        )


def broadcast_parameters(model: Module, src: int = 0) -> None:
    """Copy rank `src`'s weights and buffers to every process (same start everywhere)."""
    if rank_and_world_size()[1] == 1:
        return
    for t in model.state_dict().values():
        dist.broadcast(t, src)


def average_gradients(model: Module) -> None:
    """p.grad ← (1/world_size) Σ_ranks p.grad, for every parameter, in place."""
    _, world = rank_and_world_size()
    if world == 1:
        return
    for p in model.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)  # a rank whose shard did not touch p still joins in
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad /= world


def prepare(model: Module) -> None:
    """Check every process has the same model, then start them all from rank 0's weights."""
    check_same_model(model)
    broadcast_parameters(model)
