"""MAML (Finn et al. 2017) with functional parameters.

    inner loop:  theta' = theta - alpha * grad L_support(theta)          (adapt)
    outer loop:  theta <- theta - beta * grad_theta sum_tasks L_query(theta')   (meta_step)

The meta-gradient flows *through* the inner update, which is why ``adapt`` keeps the graph
of its own gradients (``create_graph=True``). With ``create_graph=False`` the inner
gradient is a constant, d theta'/d theta = I, and the result is first-order MAML.

This file is the algorithm and nothing else: it imports torch and the task types only. Faster
ways to compute the same meta-gradient (batched.py) and sharing it over processes
(distributed.py) build on it, and are handed to ``meta_step`` as its ``engine``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .tasks import TaskBatch

Params = dict[str, torch.Tensor]  # parameter name -> tensor: theta, or a task's fast weights
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (model, params, tasks, inner_lr, steps, first_order, loss_fn) -> (meta-gradient, loss, accuracy)
MetaGradient = Callable[..., tuple[list[torch.Tensor], float, float]]

# Finn et al. (2017), Omniglot: inner lr, inner steps in training and at test, tasks per meta-batch.
PAPER_DEFAULTS = {
    5: dict(inner_lr=0.4, train_steps=1, test_steps=3, meta_batch=32),
    20: dict(inner_lr=0.1, train_steps=5, test_steps=5, meta_batch=16),
}
META_LR = 1e-3  # Adam, both settings


def paper_defaults(ways: int) -> dict:
    """The paper's settings for 5- or 20-way; other ways take the nearer one's."""
    return dict(PAPER_DEFAULTS[5 if ways < 13 else 20])


def params_of(model: nn.Module) -> Params:
    """The model's parameters as a name -> tensor dict (the slow weights theta)."""
    return dict(model.named_parameters())


def detached_params(model: nn.Module) -> Params:
    """Leaf copies of theta for test-time adaptation: gradients flow to them, never to the model."""
    return {name: p.detach().requires_grad_() for name, p in model.named_parameters()}


def forward(model: nn.Module, params: Params, x: torch.Tensor) -> torch.Tensor:
    return functional_call(model, params, (x,))


def balanced_batches(labels: torch.Tensor, per_class: int) -> list[torch.Tensor]:
    """Indices of ``labels`` in batches of ``per_class`` drawings of every class, in order: the
    first ``per_class`` drawings of each class, then the next, and so on."""
    if per_class < 1:
        raise ValueError(f"query batches need at least 1 drawing per class, got {per_class}; "
                         "forward_in_batches(..., per_class=None) sends all drawings through "
                         "in one batch")
    counts = torch.bincount(labels)
    if counts.min() != counts.max() or counts[0] % per_class:
        raise ValueError(f"query batches of {per_class} per class need the same number of query "
                         f"drawings in every class, a multiple of {per_class}; got {counts.tolist()}")
    by_class = torch.argsort(labels, stable=True).view(len(counts), -1)  # row c: class c's images
    return [by_class[:, i:i + per_class].reshape(-1) for i in range(0, by_class.shape[1], per_class)]


def forward_in_batches(model: nn.Module, params: Params, x: torch.Tensor, labels: torch.Tensor,
                       per_class: int | None) -> torch.Tensor:
    """Logits of the images x, sent through the network in batches of ``per_class`` drawings of
    every class (``balanced_batches``; ``None``: all at once).

    BatchNorm here normalises with the statistics of the batch it is given (as in the paper), so
    an image's logits depend on the other images in its batch. Meta-training shows the network
    query batches of ``queries`` drawings per class; test batches of that same make-up measure
    the model in the setting it learned for, as the paper's code does (K query drawings per
    class). The labels only choose which images share a batch; they never enter the network.
    """
    if per_class is None:
        return forward(model, params, x)
    batches = balanced_batches(labels, per_class)
    logits = [forward(model, params, x[b]) for b in batches]
    out = logits[0].new_empty(len(x), logits[0].shape[1])
    out[torch.cat(batches)] = torch.cat(logits)
    return out


def adapt(model: nn.Module, params: Params, support_x: torch.Tensor, support_y: torch.Tensor,
          inner_lr: float, steps: int, create_graph: bool = True,
          loss_fn: LossFn = F.cross_entropy) -> Params:
    """Fast weights after ``steps`` SGD steps on the support set (the inner loop)."""
    for _ in range(steps):
        loss = loss_fn(forward(model, params, support_x), support_y)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
        params = {name: p - inner_lr * g for (name, p), g in zip(params.items(), grads)}
    return params


def task_query_loss(model: nn.Module, params: Params, task, inner_lr: float, steps: int,
                    first_order: bool = False, loss_fn: LossFn = F.cross_entropy):
    """Adapt on one task's support set; return (query loss, query logits) at the fast weights."""
    support_x, support_y, query_x, query_y = task
    fast = adapt(model, params, support_x, support_y, inner_lr, steps,
                 create_graph=not first_order, loss_fn=loss_fn)
    logits = forward(model, fast, query_x)
    return loss_fn(logits, query_y), logits


def meta_gradient(model: nn.Module, params: Params, tasks: TaskBatch, inner_lr: float, steps: int,
                  first_order: bool = False, loss_fn: LossFn = F.cross_entropy):
    """grad_theta of the mean query loss over the tasks, and (mean loss, mean accuracy).

    Tasks are differentiated one at a time and the gradients summed, so only one task's
    graph (which second order keeps for every inner step) is alive at once.
    """
    total = [torch.zeros_like(p) for p in params.values()]
    losses, accs = [], []
    for b in range(len(tasks)):
        loss, logits = task_query_loss(model, params, tasks.task(b), inner_lr, steps,
                                       first_order, loss_fn)
        grads = torch.autograd.grad(loss / len(tasks), list(params.values()))
        for t, g in zip(total, grads):
            t.add_(g)
        losses.append(loss.item())
        if not tasks.query_y.is_floating_point():  # classification: also report accuracy
            accs.append((logits.argmax(1) == tasks.query_y[b]).float().mean().item())
    mean_acc = sum(accs) / len(accs) if accs else float("nan")
    return total, sum(losses) / len(losses), mean_acc


def meta_step(model: nn.Module, optimizer: torch.optim.Optimizer, tasks: TaskBatch,
              inner_lr: float, steps: int, first_order: bool = False,
              loss_fn: LossFn = F.cross_entropy, engine: MetaGradient = meta_gradient) -> tuple[float, float]:
    """One outer-loop update of the model's parameters; returns (mean query loss, accuracy).

    ``engine`` computes the meta-gradient: ``meta_gradient`` above, or any function with its
    signature and result (e.g. batched.py's, which runs all tasks together, or one wrapped by
    distributed.py to average over processes). Raises FloatingPointError, before touching the
    parameters, if the loss or the meta-gradient is not finite.
    """
    params = params_of(model)
    grads, loss, acc = engine(model, params, tasks, inner_lr, steps, first_order, loss_fn)
    if not math.isfinite(loss) or not all(torch.isfinite(g).all() for g in grads):
        raise FloatingPointError(f"meta-loss is {loss}")
    optimizer.zero_grad(set_to_none=True)
    for p, g in zip(params.values(), grads):
        p.grad = g
    optimizer.step()
    return loss, acc


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(1) == labels).float().mean()


def adaptation_curve(model: nn.Module, tasks: TaskBatch, inner_lr: float, steps: int,
                     metric: LossFn = accuracy, loss_fn: LossFn = F.cross_entropy,
                     query_batch: int | None = None) -> torch.Tensor:
    """(tasks, steps + 1): ``metric`` on each query set after 0, 1, ..., ``steps`` inner steps.

    This is adaptation at test time: no meta-gradient is needed, so no graph is kept
    (``create_graph=False``), and the model's own parameters are never touched. The query set
    goes through the network ``query_batch`` drawings per class at a time (``forward_in_batches``).
    """
    params = detached_params(model)
    rows = []
    for b in range(len(tasks)):
        support_x, support_y, query_x, query_y = tasks.task(b)
        fast, row = params, []
        for step in range(steps + 1):
            with torch.no_grad():
                row.append(metric(forward_in_batches(model, fast, query_x, query_y, query_batch), query_y))
            if step < steps:
                fast = adapt(model, fast, support_x, support_y, inner_lr, 1, create_graph=False,
                             loss_fn=loss_fn)
        rows.append(torch.stack(row))
    return torch.stack(rows)


def query_accuracies(model: nn.Module, tasks: TaskBatch, inner_lr: float, steps: int,
                     query_batch: int | None = None) -> torch.Tensor:
    """(tasks, steps + 1) query accuracy after 0, 1, ..., ``steps`` inner steps, per task."""
    return adaptation_curve(model, tasks, inner_lr, steps, query_batch=query_batch)
