"""The sinusoid tasks and the paper's 2x40 network (maml_helpers.sinusoid)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from maml_helpers.maml import forward, meta_gradient, meta_step, params_of
from maml_helpers.sinusoid import (SineMLP, adaptation_losses, adapted_predictions, sample_sine_tasks,
                                   sine)


def test_shapes_and_dtypes():
    tasks = sample_sine_tasks(batch=4, k=10, seed=0)
    assert len(tasks) == 4
    for t in (tasks.support_x, tasks.support_y, tasks.query_x, tasks.query_y):
        assert t.shape == (4, 10, 1) and t.dtype == torch.float32
    assert tasks.classes.shape == (4, 2)
    wide = sample_sine_tasks(batch=3, k=5, seed=0, k_query=100)
    assert wide.support_x.shape == (3, 5, 1) and wide.query_y.shape == (3, 100, 1)


def test_ranges_and_targets():
    tasks = sample_sine_tasks(batch=500, k=10, seed=1)
    amplitude, phase = tasks.classes[:, 0], tasks.classes[:, 1]
    assert amplitude.min() >= 0.1 and amplitude.max() <= 5.0
    assert phase.min() >= 0.0 and phase.max() <= math.pi
    for x in (tasks.support_x, tasks.query_x):
        assert x.min() >= -5.0 and x.max() <= 5.0
    # y = A sin(x - phase), up to float32 rounding, for support and query alike
    for x, y in ((tasks.support_x, tasks.support_y), (tasks.query_x, tasks.query_y)):
        expected = sine(x.double().numpy(), amplitude[:, None, None], phase[:, None, None])
        assert np.allclose(y.numpy(), expected, atol=1e-5)


def test_seeded_reproducibility():
    a, b = sample_sine_tasks(8, 10, seed=[0, 7]), sample_sine_tasks(8, 10, seed=[0, 7])
    c = sample_sine_tasks(8, 10, seed=[0, 8])
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_y, b.query_y)
    assert np.array_equal(a.classes, b.classes)
    assert not torch.equal(a.support_x, c.support_x)


def test_model_is_the_papers_and_works_functionally():
    torch.manual_seed(0)
    model = SineMLP()
    assert sum(p.numel() for p in model.parameters()) == 1 * 40 + 40 + 40 * 40 + 40 + 40 * 1 + 1  # 1761
    x = torch.linspace(-5, 5, 7).unsqueeze(1)
    assert model(x).shape == (7, 1)
    assert torch.equal(forward(model, params_of(model), x), model(x))


def test_one_meta_step_reduces_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = SineMLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tasks = sample_sine_tasks(batch=10, k=10, seed=0)
    _, before, acc = meta_gradient(model, params_of(model), tasks, 0.01, 1, loss_fn=F.mse_loss)
    assert math.isnan(acc)  # regression: no accuracy
    loss, _ = meta_step(model, opt, tasks, 0.01, 1, loss_fn=F.mse_loss)
    assert loss == before
    _, after, _ = meta_gradient(model, params_of(model), tasks, 0.01, 1, loss_fn=F.mse_loss)
    assert after < before


def test_adaptation_helpers_leave_the_model_alone():
    torch.manual_seed(0)
    model = SineMLP()
    before = [p.detach().clone() for p in model.parameters()]
    tasks = sample_sine_tasks(batch=3, k=10, seed=2, k_query=50)
    curve = adaptation_losses(model, tasks, 0.01, steps=4)
    assert curve.shape == (3, 5) and torch.isfinite(curve).all()
    with torch.no_grad():
        start = torch.stack([F.mse_loss(model(tasks.query_x[b]), tasks.query_y[b]) for b in range(3)])
    assert torch.equal(curve[:, 0], start)
    sx, sy, _, _ = tasks.task(0)
    x = torch.linspace(-5, 5, 11).unsqueeze(1)
    preds = adapted_predictions(model, sx, sy, x, 0.01, steps=(0, 1, 3))
    assert list(preds) == [0, 1, 3] and preds[0].shape == (11,)
    assert np.array_equal(preds[0], model(x).detach().squeeze(1).numpy())
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())
