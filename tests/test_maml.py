"""Proofs that the MAML engine computes the right meta-gradient.

1. It equals central finite differences of the whole map theta -> L_query(adapt(theta)),
   in float64, on a small conv net with BatchNorm (affine parameters included).
2. On a linear model with squared loss, where the Hessian H is known in closed form, it
   equals (I - alpha H) grad L_query(theta'), and first order differs by exactly alpha H grad.
3. The blog-post pattern (deepcopy + p.data.copy_) gives no meta-gradient at all.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from maml_helpers import finite_difference_grad
from maml_helpers.evaluation import mean_and_ci95, meta_test_accuracy, task_accuracies
from maml_helpers.maml import (adapt, balanced_batches, forward, forward_in_batches, meta_gradient, meta_step,
                               params_of, query_accuracies)
from maml_helpers.model import ConvNet
from maml_helpers.tasks import TaskBatch, TaskSampler


def small_tasks(batch=2, ways=3, shots=2, queries=2, size=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    y = lambda k: torch.randperm(ways, generator=g).repeat_interleave(k).repeat(batch, 1)
    return TaskBatch(torch.rand(batch, ways * shots, 1, size, size, generator=g, dtype=dtype), y(shots),
                     torch.rand(batch, ways * queries, 1, size, size, generator=g, dtype=dtype), y(queries), None)


@pytest.mark.parametrize("arch", ["strided", "maxpool"])
def test_model_shapes_and_functional_call(arch):
    torch.manual_seed(0)
    model = ConvNet(ways=5, arch=arch)
    x = torch.rand(7, 1, 28, 28)
    assert model(x).shape == (7, 5)
    assert torch.equal(forward(model, params_of(model), x), model(x))
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bn) == 4 and all(not m.track_running_stats and m.affine for m in bn)
    # 64*9+64 + 3*(64*64*9+64) conv, 4*128 BatchNorm, 64*5+5 head: the same for both archs
    assert sum(p.numel() for p in model.parameters()) == 112261


@pytest.mark.parametrize("steps", [1, 2])
def test_meta_gradient_equals_finite_differences_with_batchnorm(steps):
    torch.manual_seed(0)
    model = ConvNet(ways=3, hidden=4).double()
    with torch.no_grad():  # BatchNorm's affine weights away from 1 and 0, so they matter
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5); m.bias.uniform_(-0.5, 0.5)
    params = params_of(model)
    tasks = small_tasks()
    grads, loss, _ = meta_gradient(model, params, tasks, inner_lr=0.4, steps=steps)

    def mean_query_loss():
        total = 0.0
        for b in range(len(tasks)):
            sx, sy, qx, qy = tasks.task(b)
            with torch.enable_grad():
                fast = adapt(model, params, sx, sy, 0.4, steps, create_graph=False)
            total += F.cross_entropy(forward(model, fast, qx), qy).item()
        return total / len(tasks)

    assert abs(mean_query_loss() - loss) < 1e-12
    # every coordinate of every parameter, BatchNorm's affine weights and biases included
    numeric = finite_difference_grad(mean_query_loss, list(params.values()), eps=1e-6)
    for (name, _), g, n in zip(params.items(), grads, numeric):
        assert torch.allclose(g, n, rtol=1e-5, atol=1e-8), f"{name}: max diff {(g - n).abs().max():.3g}"
    assert "features.1.weight" in params  # (the first BatchNorm's scale)
    # first order is a different function's gradient: it must NOT match finite differences
    fo, _, _ = meta_gradient(model, params, tasks, inner_lr=0.4, steps=steps, first_order=True)
    assert max((a - b).abs().max() for a, b in zip(fo, numeric)) > 1e-4


def linear_regression_case(seed=0, d=4, n=6, alpha=0.1):
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, d, generator=g, dtype=torch.float64))
    xs, xq = (torch.randn(1, n, d, generator=g, dtype=torch.float64) for _ in range(2))
    ys, yq = (torch.randn(1, n, 1, generator=g, dtype=torch.float64) for _ in range(2))
    return model, TaskBatch(xs, ys, xq, yq, None), alpha


def test_meta_gradient_equals_the_analytic_formula():
    model, tasks, alpha = linear_regression_case()
    theta = model.weight.detach().flatten()
    xs, ys, xq, yq = (t[0] for t in (tasks.support_x, tasks.support_y, tasks.query_x, tasks.query_y))
    n = len(xs)
    # L(theta) = mean((X theta - y)^2): gradient 2/n X^T (X theta - y), Hessian H = 2/n X^T X
    grad = lambda X, y, th: 2 / n * X.T @ (X @ th - y.flatten())
    H = 2 / n * xs.T @ xs
    theta_fast = theta - alpha * grad(xs, ys, theta)
    g_query = grad(xq, yq, theta_fast)
    expected_so = (torch.eye(len(theta), dtype=torch.float64) - alpha * H) @ g_query

    so, _, _ = meta_gradient(model, params_of(model), tasks, alpha, 1, loss_fn=F.mse_loss)
    fo, _, _ = meta_gradient(model, params_of(model), tasks, alpha, 1, first_order=True, loss_fn=F.mse_loss)
    assert torch.allclose(so[0].flatten(), expected_so, rtol=1e-12, atol=1e-12)
    assert torch.allclose(fo[0].flatten(), g_query, rtol=1e-12, atol=1e-12)
    # first order drops exactly the Hessian term alpha * H * grad L_query(theta')
    assert torch.allclose((fo[0] - so[0]).flatten(), alpha * H @ g_query, rtol=1e-12, atol=1e-12)
    assert (alpha * H @ g_query).abs().max() > 1e-3  # and that term is not negligible here


def test_deepcopy_and_data_copy_severs_the_meta_gradient():
    """The widely copied pattern: build the adapted model as a deepcopy and write the fast
    weights into it with p.data.copy_(...). The query loss then has no path back to theta."""
    torch.manual_seed(0)
    model = ConvNet(ways=3, hidden=8)
    sx, sy, qx, qy = small_tasks(batch=1, dtype=torch.float32).task(0)
    support_loss = F.cross_entropy(model(sx), sy)
    grads = torch.autograd.grad(support_loss, list(model.parameters()), create_graph=True)
    adapted = copy.deepcopy(model)
    for p_fast, p, g in zip(adapted.parameters(), model.parameters(), grads):
        p_fast.data.copy_(p - 0.4 * g)  # .data: outside autograd's view
    F.cross_entropy(adapted(qx), qy).backward()
    assert all(p.grad is None for p in model.parameters())  # theta receives nothing
    # the functional version of the same step does reach theta
    ours, _, _ = meta_gradient(model, params_of(model), TaskBatch(sx[None], sy[None], qx[None], qy[None], None), 0.4, 1)
    assert all(torch.isfinite(g).all() for g in ours) and sum(g.abs().sum() for g in ours) > 0


def test_meta_step_learns_and_refuses_nan():
    torch.manual_seed(0)
    model = ConvNet(ways=3, hidden=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    tasks = small_tasks(dtype=torch.float32)
    first, _ = meta_step(model, opt, tasks, 0.4, 1)
    for _ in range(20):
        last, acc = meta_step(model, opt, tasks, 0.4, 1)
    assert last < first and 0 <= acc <= 1
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(FloatingPointError):
        meta_step(model, opt, tasks, float("nan"), 1)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # untouched


def test_evaluation_accuracy_and_interval():
    images = torch.randint(0, 256, (12, 20, 28, 28), dtype=torch.uint8).numpy()
    sampler = TaskSampler(images, range(12), ways=5, shots=1, queries=3)
    torch.manual_seed(0)
    model = ConvNet(ways=5, hidden=8)
    acc, ci = meta_test_accuracy(model, sampler, 0.4, 2, tasks=20, batch_size=7)
    assert 0 <= acc <= 1 and 0 < ci < 0.5
    assert (acc, ci) == meta_test_accuracy(model, sampler, 0.4, 2, tasks=20, batch_size=7)  # seeded
    accs = task_accuracies(model, sampler, 0.4, 2, tasks=20, batch_size=7)
    assert accs.dtype == torch.float64 and accs.shape == (20,) and (acc, ci) == mean_and_ci95(accs)
    # Batches are seeded by their start: a shorter run (whole batches) draws the first tasks again.
    assert torch.equal(task_accuracies(model, sampler, 0.4, 2, tasks=14, batch_size=7), accs[:14])
    curve = query_accuracies(model, sampler.sample(3, seed=0), 0.4, 4)
    assert curve.shape == (3, 5)


def test_balanced_batches_take_the_next_drawings_of_every_class_in_turn():
    labels = torch.tensor([0, 1, 2, 2, 0, 1, 1, 2, 0])  # class 0 at 0, 4, 8; 1 at 1, 5, 6; 2 at 2, 3, 7
    assert [b.tolist() for b in balanced_batches(labels, 1)] == [[0, 1, 2], [4, 5, 3], [8, 6, 7]]
    assert [b.tolist() for b in balanced_batches(labels, 3)] == [[0, 4, 8, 1, 5, 6, 2, 3, 7]]
    with pytest.raises(ValueError, match=r"query batches of 2 per class .* a multiple of 2; got \[3, 3, 3\]"):
        balanced_batches(labels, 2)


def test_query_batches_hold_k_drawings_of_every_class_and_batchnorm_sees_only_them():
    torch.manual_seed(0)
    model = ConvNet(ways=3, hidden=8).double()
    task = small_tasks(batch=1, ways=3, queries=4, size=28).task(0)
    x, y, params = task[2], task[3], params_of(model)
    whole = forward(model, params, x)
    # None, or one batch holding all 4 per class: BatchNorm sees the whole set either way
    assert torch.equal(forward_in_batches(model, params, x, y, None), whole)
    torch.testing.assert_close(forward_in_batches(model, params, x, y, 4), whole)
    # 1 per class: 4 batches of 3 images, one of each class, each normalised on its own
    by_one = forward_in_batches(model, params, x, y, 1)
    for i in range(4):
        rows = torch.stack([torch.nonzero(y == c).flatten()[i] for c in range(3)])
        torch.testing.assert_close(by_one[rows], forward(model, params, x[rows]))
    assert (by_one - whole).abs().max() > 1e-3  # the batch is part of the input
    for bad_y, k in [(y, 3), (torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2]), 1)]:
        with pytest.raises(ValueError, match="query batches of"):
            forward_in_batches(model, params, x, bad_y, k)
    with pytest.raises(ValueError, match=r"at least 1 drawing per class, got 0; "
                       r"forward_in_batches\(\.\.\., per_class=None\) sends all"):
        forward_in_batches(model, params, x, y, 0)
