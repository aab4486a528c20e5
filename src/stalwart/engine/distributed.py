"""Data-parallel training across processes: torchrun's ranks, each taking a share of every batch.

Under ``torchrun --nproc_per_node=N -m stalwart run CONFIG`` every process runs the same
command; ``join_from_environment`` puts them in one process group (``gloo`` on the CPU,
``nccl`` with CUDA: one GPU per process, ``LOCAL_RANK``). ``fit`` then trains as one process
would, with the work of each step split:

- every rank draws the same epoch order (the samplers are pure functions of the seed and the
  epoch), cuts it into the same global batches of ``batch_size``, and takes every ``size``-th
  example of each (``shard``): no example is padded or repeated, so group-balanced and
  upweighted sampling stay exactly what they are in one process;
- each rank's loss is its mean over its share scaled by ``share / batch``, and the gradients
  are **summed** across ranks (``sum_gradients``): the sum is the gradient of the global
  batch's mean loss, which one process computes, up to the order floating-point additions
  happen in;
- buffers (batch-norm statistics) are taken from rank 0 after each epoch, so every rank
  evaluates, selects and checkpoints the same model; each epoch's validation is sharded the
  same way (every rank computes the logits of its every ``size``-th example, and
  ``gather_shards`` puts all of them back in order on every rank, the padding of the
  all-gather dropped: no example counted twice), so every rank computes the same metrics from
  the same logits, and only rank 0 writes.

A method trains this way when its loss is a mean over the examples of a batch
(``Method.data_parallel == "mean"``), or when it sums the statistics that couple examples
across ranks itself and returns its rank's share (``"share"``: group DRO sums its per-group
losses and counts, so its group weights are the same on every rank and as in one process).
Others (CVaR DRO's top fraction) are refused with a message.

The gradient is a sum over ranks where one process sums over one batch: the two agree to
float32 rounding (about 1e-7 relative per step), which training then amplifies as any
reordering of sums does. Hence "the same final metrics up to the spread of a last-bit change".
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class World:
    """This process's place among the training processes.

    Attributes:
        rank: its index, 0 to ``size - 1`` (rank 0 writes the run's files).
        size: how many processes train together (1: no data parallelism).
    """

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Whether this process writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        """Whether several processes train together."""
        return self.size > 1


def world() -> World:
    """The current process group's ``World`` (one process when there is none)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return World(torch.distributed.get_rank(), torch.distributed.get_world_size())
    return World()


def launched_by_torchrun() -> bool:
    """Whether the environment names a process group of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join_from_environment() -> World:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...).

    ``nccl`` when CUDA is available (each process on GPU ``LOCAL_RANK``), else ``gloo``. Does
    nothing outside torchrun or when the group already exists.
    """
    if not launched_by_torchrun() or torch.distributed.is_initialized():
        return world()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group("nccl")
    else:
        torch.distributed.init_process_group("gloo")
    return world()


def shard(positions: Tensor, place: World) -> Tensor:
    """This rank's share of one global batch: every ``size``-th position from its rank."""
    return positions[place.rank :: place.size] if place.parallel else positions


def sum_gradients(parameters: Iterable[nn.Parameter], place: World) -> None:
    """Replace each parameter's gradient by its sum over the ranks (one flat all-reduce).

    A parameter without a gradient on this rank (its share of the batch was empty, or the
    parameter did not take part) contributes zeros, so every rank joins the same reduction.
    """
    if not place.parallel:
        return
    trained = [p for p in parameters if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in trained]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    offset = 0
    for parameter, grad in zip(trained, grads, strict=True):
        parameter.grad = flat[offset : offset + grad.numel()].view_as(grad).clone()
        offset += grad.numel()


def sum_across(value: Tensor, place: World) -> Tensor:
    """``value`` summed over the ranks (in place; unchanged with one process)."""
    if place.parallel:
        torch.distributed.all_reduce(value)
    return value


def share_buffers(module: nn.Module, place: World) -> None:
    """Give every rank rank 0's buffers (batch-norm running statistics)."""
    if place.parallel:
        for buffer in module.buffers():
            torch.distributed.broadcast(buffer, src=0)


def barrier(place: World) -> None:
    """Wait until every rank gets here."""
    if place.parallel:
        torch.distributed.barrier()


def collective_device() -> torch.device:
    """Where tensors of a collective must be: this process's GPU under ``nccl``, else the CPU."""
    if torch.distributed.is_initialized() and torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_shards(local: Tensor, n: int, place: World) -> Tensor:
    """The rows every rank computed for its shard of ``n`` positions, back in their order.

    Rank ``r`` holds the rows of positions ``r, r + size, ...`` (``shard`` of ``arange(n)``).
    Shards differ in length by at most one, so each is padded to the longest for one
    all-gather, and the padding is dropped when the rows are put back: none is counted twice.
    """
    if not place.parallel:
        return local
    longest = -(-n // place.size)
    device = collective_device()
    padded = torch.zeros(longest, *local.shape[1:], dtype=local.dtype, device=device)
    padded[: len(local)] = local.to(device)
    parts = [torch.empty_like(padded) for _ in range(place.size)]
    torch.distributed.all_gather(parts, padded)
    out = torch.empty(n, *local.shape[1:], dtype=local.dtype, device=local.device)
    for rank, part in enumerate(parts):
        out[rank :: place.size] = part[: len(range(rank, n, place.size))].to(local.device)
    return out
