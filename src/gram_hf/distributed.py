"""
Collectives GRAM needs across processes, on top of `torch.distributed` (set up by `accelerate`).

GRAM calls the content encoder and the head directly rather than through the DDP-wrapped model's `forward`, so DDP's
reducer never runs; the trainer combines gradients itself at each optimizer-step boundary with these helpers. Every
helper is a no-op (or the identity) in a single process, so the single-process path is exactly the multi-process one
with a world of one.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist


def world_size() -> int:
    """The number of processes (1 when `torch.distributed` is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when `torch.distributed` is not initialised)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def all_reduce_gradients(parameters: Iterable[torch.nn.Parameter], average: bool) -> None:
    """
    Sums (or, with `average`, averages) the gradients of `parameters` over processes, in place.

    A parameter whose gradient is `None` on every process keeps `None`, so optimizers skip it exactly as in a single
    process; one that has a gradient somewhere gets zeros where it had none before the reduction. The gradients travel
    in one flat buffer (one collective for the flags and one for the values).
    """
    if world_size() == 1:
        return
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    device = params[0].device
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=device)
    dist.all_reduce(has_grad, op=dist.ReduceOp.MAX)
    reduced = [p for p, flag in zip(params, has_grad.tolist()) if flag]
    if not reduced:
        return
    for p in reduced:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1).float() for p in reduced])
    dist.all_reduce(flat)
    if average:
        flat /= world_size()
    offset = 0
    for p in reduced:
        count = p.grad.numel()
        p.grad.copy_(flat[offset : offset + count].view_as(p.grad))
        offset += count


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` summed over processes (a new tensor; `tensor` itself in a single process)."""
    if world_size() == 1:
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor


def any_process(flag: bool, device: torch.device) -> bool:
    """Whether `flag` is true on any process (every process gets the same answer)."""
    if world_size() == 1:
        return flag
    value = torch.tensor([int(flag)], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def all_gather_rows(tensor: torch.Tensor) -> list[torch.Tensor]:
    """
    The `tensor` of every process, in rank order; the tensors may differ in their first dimension (padded for the
    collective, trimmed after). Later dimensions and dtype must agree.
    """
    if world_size() == 1:
        return [tensor]
    size = torch.tensor([tensor.shape[0]], dtype=torch.long, device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(world_size())]
    dist.all_gather(sizes, size)
    sizes = [int(s.item()) for s in sizes]
    longest = max(sizes)
    if longest == 0:
        return [tensor[:0] for _ in sizes]
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded.contiguous())
    return [rows[:count] for rows, count in zip(gathered, sizes)]


def union(index: torch.LongTensor) -> torch.LongTensor:
    """The union of every process's `index` (1-D, unique entries): `index` itself in a single process, else sorted."""
    if world_size() == 1:
        return index
    return torch.unique(torch.cat(all_gather_rows(index)))


def shard(index: torch.Tensor) -> torch.Tensor:
    """This process's share of `index` (every `world_size`-th entry from its rank), possibly empty."""
    return index[rank() :: world_size()]


__all__ = [
    "all_gather_rows",
    "all_reduce_gradients",
    "all_reduce_sum",
    "any_process",
    "rank",
    "shard",
    "union",
    "world_size",
]
