"""Sinusoid regression, the toy problem of Finn et al. (2017), section 5.1.

A task is a sine wave y = A sin(x - phase) with amplitude A ~ U[0.1, 5] and phase ~ U[0, pi];
its inputs are x ~ U[-5, 5]. The support set has K points (the paper uses K = 5 or 10), the
query set K more (or ``k_query``). The network is the paper's: 1 -> 40 -> 40 -> 1 with ReLU,
trained with the mean squared error. Everything here works with ``maml.adapt`` and
``maml.meta_step`` given ``loss_fn=torch.nn.functional.mse_loss``.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .maml import adapt, adaptation_curve, detached_params, forward
from .tasks import TaskBatch

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, math.pi)
X_RANGE = (-5.0, 5.0)


def sine(x, amplitude: float, phase: float):
    """The task's true function (as in the paper's code: A sin(x - phase))."""
    return amplitude * np.sin(np.asarray(x) - phase)


def sample_sine_tasks(batch: int, k: int, seed: int | Sequence[int], k_query: int | None = None) -> TaskBatch:
    """``batch`` sine tasks drawn from ``np.random.default_rng(seed)``: same seed, same tasks.

    support_x, support_y: (batch, k, 1) float32    query_x, query_y: (batch, k_query or k, 1)
    classes: (batch, 2) float64, each task's (amplitude, phase), kept for plotting the truth.
    """
    rng = np.random.default_rng(seed)
    k_query = k if k_query is None else k_query
    amplitude = rng.uniform(*AMPLITUDE, size=batch)
    phase = rng.uniform(*PHASE, size=batch)
    # Support and query are drawn from the same x range: the query set measures how well the
    # adapted model fits the *whole* wave, not how it extrapolates.
    x = rng.uniform(*X_RANGE, size=(batch, k + k_query, 1))
    y = sine(x, amplitude[:, None, None], phase[:, None, None])
    x, y = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    return TaskBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:], np.stack([amplitude, phase], axis=1))


class SineMLP(nn.Sequential):
    """The paper's regressor: two hidden layers of 40 ReLU units, input and output of size 1.

    A plain ``nn.Sequential``, so the parameter names ('0.weight', ..., '4.bias') are the keys
    that ``functional_call`` expects in a fast-weights dict.
    """

    def __init__(self, hidden: int = 40):
        super().__init__(nn.Linear(1, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 1))


def adaptation_losses(model: nn.Module, tasks: TaskBatch, inner_lr: float, steps: int) -> torch.Tensor:
    """(tasks, steps + 1) query MSE after 0, 1, ..., ``steps`` SGD steps on each support set."""
    return adaptation_curve(model, tasks, inner_lr, steps, metric=F.mse_loss, loss_fn=F.mse_loss)


def adapted_predictions(model: nn.Module, support_x: torch.Tensor, support_y: torch.Tensor,
                        x: torch.Tensor, inner_lr: float, steps: Sequence[int]) -> dict[int, np.ndarray]:
    """The model's predictions at ``x`` after each number of SGD steps in ``steps``."""
    fast = detached_params(model)
    out, done = {}, 0
    for target in sorted(steps):
        fast = adapt(model, fast, support_x, support_y, inner_lr, target - done,
                     create_graph=False, loss_fn=F.mse_loss)
        done = target
        with torch.no_grad():
            out[target] = forward(model, fast, x).squeeze(-1).numpy()
    return out


def plot_sine_adaptation(ax, model: nn.Module, tasks: TaskBatch, b: int, inner_lr: float,
                         steps: Sequence[int] = (0, 1, 10), title: str = ""):
    """Finn et al.'s Figure 2 for one model: the true wave, the K support points, and the
    model's fit before adaptation and after each number of ``steps``."""
    amplitude, phase = tasks.classes[b]
    grid = torch.linspace(*X_RANGE, 200).unsqueeze(-1)
    support_x, support_y, _, _ = tasks.task(b)
    fits = adapted_predictions(model, support_x, support_y, grid, inner_lr, steps)
    ax.plot(grid.squeeze(-1), sine(grid.squeeze(-1).numpy(), amplitude, phase), color="tab:red",
            lw=2, label="ground truth")
    styles = ["--", "-", "-", "-"]
    for i, (n, y) in enumerate(fits.items()):
        ax.plot(grid.squeeze(-1), y, styles[min(i, 3)], lw=1.5,
                color="tab:gray" if n == 0 else None,
                label="before adaptation" if n == 0 else f"after {n} step{'s' * (n > 1)}")
    ax.plot(support_x.squeeze(-1), support_y.squeeze(-1), "^", color="tab:purple", ms=8,
            label=f"{len(support_x)} support points")
    ax.set_xlim(*X_RANGE)
    ax.set_title(title)
    ax.set_xlabel("x")
    ax.legend(loc="lower right", fontsize=8)
    return ax
