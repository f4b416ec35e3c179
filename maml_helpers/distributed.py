"""Data-parallel meta-training: each process takes a share of the meta-batch.

A meta-gradient is a mean over tasks, so W processes can each differentiate B/W of the
tasks and add their results (``all_reduce``): the sum is the single-process meta-gradient,
and every process then takes the same Adam step and keeps identical weights. Launch with
torchrun, which sets RANK / WORLD_SIZE / MASTER_ADDR for each process:

    torchrun --nproc_per_node 2 -m maml_helpers.train ...                       # one machine
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --master_port 29500 \\
             --nproc_per_node 1 -m maml_helpers.train ...                        # and node_rank 1

Backend: gloo on CPUs, nccl on GPUs. All processes draw the same tasks (seeded by the
iteration), so nothing but gradients and the stop flag needs to be sent.
"""
from __future__ import annotations

import os
import time

import torch
import torch.distributed as dist

from .errors import MamlError
from .maml import MetaGradient
from .tasks import TaskBatch


def init_from_env(device: torch.device) -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun with > 1 process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def check_divisible(meta_batch: int, world: int) -> None:
    """Every process must get the same number of tasks, or their means would weigh unequally."""
    if meta_batch % world:
        raise MamlError(f"A meta-batch of {meta_batch} tasks cannot be split evenly over {world} "
                        f"processes. Use a --meta-batch divisible by {world}.")


def shard(tasks: TaskBatch, rank: int, world: int) -> TaskBatch:
    """This process's contiguous share of the meta-batch (all shares equal)."""
    check_divisible(len(tasks), world)
    n = len(tasks) // world
    part = slice(rank * n, (rank + 1) * n)
    classes = tasks.classes[part] if tasks.classes is not None else None
    return TaskBatch(tasks.support_x[part], tasks.support_y[part], tasks.query_x[part],
                     tasks.query_y[part], classes)


def average_across_processes(grads: list[torch.Tensor], *numbers: float) -> tuple[list, list[float]]:
    """Mean over processes of each rank's meta-gradient (in place) and of some numbers."""
    world = world_size()
    if world == 1:
        return grads, list(numbers)
    flat = torch.cat([g.reshape(-1) for g in grads] + [grads[0].new_tensor(numbers)])
    _all_reduce(flat)  # one message instead of one per parameter
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()
    return grads, flat[offset:].tolist()


def averaged(engine: MetaGradient) -> MetaGradient:
    """``engine`` (a meta-gradient function, see ``maml.meta_step``) on this process's share of
    the tasks, averaged over all processes: every process gets the whole meta-batch's result."""
    def meta_gradient_of_all(*args, **kwargs):
        grads, loss, acc = engine(*args, **kwargs)
        grads, (loss, acc) = average_across_processes(grads, loss, acc)
        return grads, loss, acc
    return meta_gradient_of_all


def any_process(flag: bool, device="cpu") -> bool:
    """True on every process if it is true on any (e.g. a stop request seen by one of them)."""
    return bool(_reduce(float(flag), dist.ReduceOp.MAX, device)) if world_size() > 1 else flag


def min_across_processes(value: float, device="cpu") -> float:
    """The smallest of the processes' values, on every process (e.g. what a time budget allows)."""
    return _reduce(float(value), dist.ReduceOp.MIN, device) if world_size() > 1 else value


def _reduce(value: float, op, device) -> float:
    t = torch.tensor([value], device=device)
    _all_reduce(t, op)
    return t.item()


def _all_reduce(t: torch.Tensor, op=None, patience: float = 1.0) -> None:
    """``dist.all_reduce(t)``, returning only once gloo has let go of ``t``.

    Gloo's worker thread drops its reference to ``t`` a moment after the result is ready. If
    ours is gone by then, that thread must take the GIL to free ``t``'s Python object; if the
    interpreter is already exiting, it aborts the whole process ("terminate called without an
    active exception": 4 of 80 two-process runs here, 0 of 120 with this wait; see
    pytorch/pytorch#179291). Here about one call in five returns before gloo has let go, and
    it does so within 6 ms. So we wait, without the GIL, until ours is the only reference:
    the last release is then this thread's, with the GIL held.
    """
    dist.all_reduce(t, op=dist.ReduceOp.SUM if op is None else op)
    if dist.get_backend() != "gloo":
        return
    give_up = time.monotonic() + patience  # never hang a run on this (seen: 0 to 6 ms)
    while t._use_count() > 1 and time.monotonic() < give_up:
        time.sleep(1e-4)  # sleeping releases the GIL, which that thread may be waiting for
