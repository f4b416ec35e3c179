"""The batched meta-step is the per-task loop's meta-gradient, to float64 precision.

The loop itself is proven against finite differences in test_maml.py; here every faster
path is held to the loop: both archs, 1 and 3 inner steps, first and second order,
BatchNorm affine parameters moved away from 1/0, tasks in one chunk or several.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from maml_helpers import batched
from maml_helpers.batched import auto_chunk, batched_forward, batched_meta_gradient
from maml_helpers.maml import forward, meta_gradient, meta_step, params_of
from maml_helpers.model import ConvNet
from maml_helpers.tasks import random_tasks
from test_maml import small_tasks


def float64_model(arch, ways=3, hidden=8, seed=0):
    torch.manual_seed(seed)
    model = ConvNet(ways, hidden=hidden, arch=arch).double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5); m.bias.uniform_(-0.5, 0.5)
    return model


@pytest.mark.parametrize("arch", ["strided", "maxpool"])
def test_batched_forward_is_each_tasks_own_forward(arch):
    model = float64_model(arch)
    tasks = small_tasks(batch=3, size=16)
    # different weights per task: theta plus a task-specific perturbation
    g = torch.Generator().manual_seed(1)
    per_task = {k: p.detach() + 0.1 * torch.randn(3, *p.shape, generator=g, dtype=p.dtype)
                for k, p in params_of(model).items()}
    got = batched_forward(model, per_task, tasks.support_x)
    for b in range(3):
        want = forward(model, {k: v[b] for k, v in per_task.items()}, tasks.support_x[b])
        torch.testing.assert_close(got[b], want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("arch", ["strided", "maxpool"])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("chunk", [None, 2])
def test_batched_meta_gradient_equals_the_loop(arch, steps, first_order, chunk):
    model = float64_model(arch)
    tasks = small_tasks(batch=5, size=16)
    params = params_of(model)
    want, want_loss, want_acc = meta_gradient(model, params, tasks, 0.4, steps, first_order)
    got, loss, acc = batched_meta_gradient(model, params, tasks, 0.4, steps, first_order, chunk=chunk)
    assert len(got) == len(want)
    for (name, _), a, b in zip(params.items(), got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)
    assert loss == pytest.approx(want_loss, rel=1e-12) and acc == pytest.approx(want_acc, abs=1e-6)  # float32 means


def test_batched_meta_step_moves_parameters_like_the_loop():
    model = float64_model("strided", ways=5, hidden=16)
    twin = copy.deepcopy(model)
    tasks = small_tasks(batch=4, ways=5, shots=1, queries=3, size=28)
    # SGD, not Adam: Adam divides by sqrt(v), which turns the ~1e-17 rounding noise in the
    # conv biases' gradient (exactly zero in theory: BatchNorm follows) into lr-sized steps.
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (model, twin)]
    for _ in range(3):
        meta_step(model, opts[0], tasks, 0.4, 1)
        meta_step(twin, opts[1], tasks, 0.4, 1, engine=batched_meta_gradient)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_batched_engine_refuses_what_it_cannot_compute():
    model = float64_model("strided")
    tasks = small_tasks(batch=2, size=16)
    with pytest.raises(ValueError, match="cross-entropy only"):
        meta_step(model, torch.optim.SGD(model.parameters(), lr=0.1), tasks, 0.4, 1,
                  loss_fn=torch.nn.functional.mse_loss, engine=batched_meta_gradient)
    with pytest.raises(TypeError, match="ConvNet"):
        batched_forward(nn.Linear(2, 2), {}, tasks.support_x)


@pytest.mark.parametrize("arch", ["strided", "maxpool"])
def test_pytorch_formulas_give_the_same_meta_gradient(arch):
    """hand_derived=False (PyTorch's double backward, bench's 'torch formulas') is the loop too."""
    model = float64_model(arch)
    tasks = small_tasks(batch=4, size=16)
    params = params_of(model)
    want, _, _ = meta_gradient(model, params, tasks, 0.4, 2)
    got, _, _ = batched_meta_gradient(model, params, tasks, 0.4, 2, hand_derived=False)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_auto_chunk_keeps_activations_under_the_budget(monkeypatch):
    # the max-pool 15-query setting: 32 tasks of 75 images; 64 x 28 x 28 floats each: 481 MB
    assert auto_chunk(ConvNet(5, arch="maxpool"), random_tasks(32, 5, 1, 15)) == 16
    assert auto_chunk(ConvNet(5), random_tasks(32, 5, 1, 1)) == 32  # 8 MB: one pass
    # a budget below one task's activations: one task per pass, still the loop's meta-gradient
    model = float64_model("strided")
    tasks = small_tasks(batch=5, size=16)
    monkeypatch.setattr(batched, "CHUNK_BYTES", 1)
    assert auto_chunk(model, tasks) == 1
    params = params_of(model)
    want, _, _ = meta_gradient(model, params, tasks, 0.4, 1)
    got, _, _ = batched_meta_gradient(model, params, tasks, 0.4, 1)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
