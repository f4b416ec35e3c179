"""Meta-testing: how well a model adapts to tasks of characters it never saw.

``meta_test_accuracy`` is the paper's figure (mean query accuracy over seeded tasks, with a 95%
interval; ``task_accuracies`` gives the per-task values behind it); ``evaluate_checkpoint``
applies it to a saved run on the characters that run held out. Training validates on the same
``task_accuracies`` and counts right answers (``correct_answers``), as ``evaluation_record``
does; the ``evaluate`` command prints the figure.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .checkpoint import load_model
from .errors import DataError, MamlError
from .maml import query_accuracies
from .omniglot import load_omniglot
from .setting import available_device, check, check_drawings, nonnegative_int, positive_int, seed_int, task_count
from .tasks import TaskSampler


def task_accuracies(model: nn.Module, sampler: TaskSampler, inner_lr: float, steps: int,
                    tasks: int = 600, seed: int = 0, batch_size: int = 50, device="cpu",
                    query_batch: int | None = None,
                    progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Query accuracy after ``steps`` inner steps on each of ``tasks`` seeded tasks (float64).

    Tasks are drawn ``batch_size`` at a time, each batch seeded by ``[seed, start]``, so the
    first n tasks are the same in every run whose n is a multiple of ``batch_size``.
    ``query_batch``: see ``maml.forward_in_batches``. ``progress(n)`` is called after every
    batch with the number done.
    """
    accs = []
    for start in range(0, tasks, batch_size):
        n = min(batch_size, tasks - start)
        batch = sampler.sample(n, seed=[seed, start]).to(device)
        accs.append(query_accuracies(model, batch, inner_lr, steps, query_batch)[:, -1])
        if progress:
            progress(start + n)
    return torch.cat(accs).double().cpu()


def mean_and_ci95(accs: torch.Tensor) -> tuple[float, float]:
    """Mean of per-task accuracies and the half-width of its 95% interval: 1.96 standard
    errors, as reported by Finn et al. (2017)."""
    ci95 = 1.96 * accs.std().item() / math.sqrt(len(accs)) if len(accs) > 1 else float("nan")
    return accs.mean().item(), ci95


def meta_test_accuracy(model: nn.Module, sampler: TaskSampler, inner_lr: float, steps: int,
                       tasks: int = 600, seed: int = 0, batch_size: int = 50, device="cpu",
                       query_batch: int | None = None,
                       progress: Callable[[int], None] | None = None) -> tuple[float, float]:
    """Mean query accuracy over ``tasks`` seeded tasks, and its 95% confidence half-width.

    Both in [0, 1]; see ``task_accuracies`` and ``mean_and_ci95``.
    """
    return mean_and_ci95(task_accuracies(model, sampler, inner_lr, steps, tasks, seed, batch_size,
                                         device, query_batch, progress))


RECORD_SETTING = ("ways", "shots", "arch", "first_order", "inner_lr", "eval_steps", "eval_queries",
                  "eval_query_batch")


def correct_answers(accs: torch.Tensor, queries_per_task: int) -> torch.Tensor:
    """The number of right query answers on each task (int64), from its accuracy."""
    correct = torch.round(accs * queries_per_task)
    assert torch.allclose(correct / queries_per_task, accs, rtol=0, atol=1e-5), "accuracies are not counts / queries"
    return correct.long()


def evaluation_record(accs: torch.Tensor, setting: dict, seed: int) -> dict:
    """What ``evaluate --json`` writes: the figure, the protocol, and the number of correct
    query answers on every task (integers, so a later run can be compared task by task).
    The figure is computed from those integers, so the record reproduces it exactly."""
    per_task = setting["ways"] * setting["eval_queries"]
    correct = correct_answers(accs, per_task)
    acc, ci = mean_and_ci95(correct.double() / per_task)
    return {"accuracy": round(100 * acc, 2), "ci95": round(100 * ci, 2), "tasks": len(accs), "seed": seed,
            **{k: setting[k] for k in RECORD_SETTING},
            "queries_per_task": per_task, "correct_per_task": correct.tolist()}


def eval_queries(shots: int) -> int:
    """Query drawings per class for validation and test: 15, or what the 20 drawings leave."""
    return min(15, 20 - shots)


def run_split(data, config: dict) -> dict:
    """The run's train/val/test characters. Training and evaluation both call this, so a
    checkpoint is always tested on the characters its run held out."""
    return data.splits(config["split"], validation=config["validation"], seed=0)


def evaluate_checkpoint(path, tasks: int = 600, steps: int | None = None, queries: int | None = None,
                        seed: int = 0, data_dir=None, download: bool = True, device="cpu",
                        query_batch: int | None = None, progress: Callable[[int], None] | None = None):
    """(accuracy, ci95, setting) of a checkpoint on seeded meta-test tasks.

    Arguments as in ``checkpoint_task_accuracies``, which this summarises.
    """
    accs, setting = checkpoint_task_accuracies(path, tasks, steps, queries, seed, data_dir, download, device,
                                               query_batch, progress)
    return (*mean_and_ci95(accs), setting)


def checkpoint_task_accuracies(path, tasks: int = 600, steps: int | None = None, queries: int | None = None,
                               seed: int = 0, data_dir=None, download: bool = True, device="cpu",
                               query_batch: int | None = None,
                               progress: Callable[[int], None] | None = None):
    """(per-task accuracies, setting) of a checkpoint on seeded meta-test tasks.

    The query set goes through the network in batches of ``query_batch`` drawings per class
    (default: the run's training queries per class; 0: the whole set at once), because
    BatchNorm's batch statistics make the batch part of the input (``maml.forward_in_batches``).
    """
    # Every argument and the checkpoint are checked before the data is loaded.
    tasks = check("--tasks", tasks, task_count)
    seed = check("--seed", seed, seed_int)
    device = check("--device", device, available_device)
    model, state = load_model(path)
    config = state["config"]
    queries = eval_queries(config["shots"]) if queries is None else check("--queries", queries, positive_int)
    check_drawings(config["shots"], queries, shots_name="the checkpoint's shots")
    steps = config["test_steps"] if steps is None else check("--steps", steps, nonnegative_int)
    query_batch = (config["queries"] if query_batch is None
                   else check("--query-batch", query_batch, nonnegative_int) or queries)
    if queries % query_batch:
        raise MamlError(f"{queries} query drawings per class do not split into batches of {query_batch} "
                        f"per class. Choose --queries as a multiple of {query_batch}, or --query-batch 0 "
                        "(the whole query set at once).")
    data = load_omniglot(data_dir, download=download)
    if state.get("data_fingerprint") not in (None, data.fingerprint):
        raise DataError("This checkpoint was trained on a different copy of Omniglot (content "
                        "fingerprints differ), so its test split is not comparable.")
    split = run_split(data, config)
    sampler = TaskSampler(data.images, split["test"], config["ways"], config["shots"], queries, split="test")
    accs = task_accuracies(model.to(device), sampler, config["inner_lr"], steps, tasks=tasks, seed=seed,
                           device=device, query_batch=query_batch, progress=progress)
    return accs, {**config, "eval_steps": steps, "eval_queries": queries, "eval_query_batch": query_batch}
