"""double_backward.py's layers: PyTorch's values and first two derivatives.

Each is held to finite differences (gradcheck / gradgradcheck, float64) and to PyTorch's own
formulas for the second derivative (a full Hessian-vector product through the backward).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

from maml_helpers.checks import second_derivatives
from maml_helpers.double_backward import batch_norm, conv2d


def f64(*shape, seed, requires_grad=True, low=None):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(*shape, generator=g, dtype=torch.float64)
    if low is not None:  # BatchNorm scales away from 0 and 1, so every term of the formulas counts
        t = low + t.abs()
    return t.requires_grad_(requires_grad)


def torch_batch_norm(x, w, b, eps=1e-5):
    return F.batch_norm(x, None, None, w, b, training=True, eps=eps)


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (2, 6, 3, 3), (7, 2)])
def test_batch_norm_values_and_derivatives(shape):
    x, w, b = f64(*shape, seed=0), f64(shape[1], seed=1, low=0.5), f64(shape[1], seed=2)
    torch.testing.assert_close(batch_norm(x, w, b), torch_batch_norm(x, w, b), rtol=0, atol=1e-12)
    assert gradcheck(batch_norm, (x, w, b))
    assert gradgradcheck(batch_norm, (x, w, b))
    inputs = (x, w, b)
    for ours, theirs in zip(second_derivatives(batch_norm, inputs), second_derivatives(torch_batch_norm, inputs)):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("stride,groups", [(1, 1), (2, 1), (1, 3), (2, 3)])
@pytest.mark.parametrize("input_needs_grad", [True, False])
def test_conv2d_values_and_derivatives(stride, groups, input_needs_grad):
    x = f64(2, 6, 7, 7, seed=0, requires_grad=input_needs_grad)
    w, b = f64(9, 6 // groups, 3, 3, seed=1), f64(9, seed=2)
    ours = lambda *t: conv2d(*t, stride=stride, padding=1, groups=groups)  # noqa: E731
    theirs = lambda *t: F.conv2d(*t, stride=stride, padding=1, groups=groups)  # noqa: E731
    torch.testing.assert_close(ours(x, w, b), theirs(x, w, b), rtol=0, atol=1e-12)
    inputs = (x, w, b) if input_needs_grad else (w, b)
    fn = (lambda f: f) if input_needs_grad else (lambda f: lambda w_, b_: f(x, w_, b_))
    assert gradcheck(fn(ours), inputs)
    assert gradgradcheck(fn(ours), inputs)
    for a, c in zip(second_derivatives(fn(ours), inputs), second_derivatives(fn(theirs), inputs)):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shared_bias", [True, False])
def test_a_shared_bank_is_the_grouped_convolution_of_copies(stride, shared_bias):
    """Filters (groups, O, C, k, k) expanded from one theta run as one plain convolution."""
    groups = 3
    theta, bias0 = f64(4, 2, 3, 3, seed=1), f64(4, seed=2)
    x = f64(2, 2 * groups, 7, 7, seed=0).transpose(2, 3)  # not contiguous, on purpose
    expand = lambda t: t.unsqueeze(0).expand(groups, *t.shape)  # noqa: E731
    bank_bias = lambda b_: expand(b_) if shared_bias else b_.repeat(groups, 1)  # noqa: E731
    ours = lambda x_, t_, b_: conv2d(x_, expand(t_), bank_bias(b_), stride=stride, padding=1)  # noqa: E731
    theirs = lambda x_, t_, b_: F.conv2d(x_, t_.repeat(groups, 1, 1, 1), b_.repeat(groups),  # noqa: E731
                                         stride=stride, padding=1, groups=groups)
    inputs = (x, theta, bias0)
    torch.testing.assert_close(ours(*inputs), theirs(*inputs), rtol=0, atol=1e-12)
    assert gradcheck(ours, inputs) and gradgradcheck(ours, inputs)
    for a, c in zip(second_derivatives(ours, inputs), second_derivatives(theirs, inputs)):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-10)


def test_first_derivatives_without_a_graph_equal_pytorchs():
    """Outside create_graph BatchNorm takes PyTorch's fused backward: same numbers either way."""
    x, w, b = f64(4, 3, 5, 5, seed=0), f64(3, seed=1, low=0.5), f64(3, seed=2)
    v = f64(4, 3, 5, 5, seed=3, requires_grad=False)
    plain = torch.autograd.grad((batch_norm(x, w, b) * v).sum(), (x, w, b))
    graph = torch.autograd.grad((batch_norm(x, w, b) * v).sum(), (x, w, b), create_graph=True)
    for a, c in zip(plain, graph):
        torch.testing.assert_close(a, c.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["batch_norm", "conv2d"])
def test_third_derivatives_are_refused_not_wrong(op):
    x, w, b = f64(2, 3, 5, 5, seed=0), f64(3, 3, 3, 3, seed=1), f64(3, seed=2)
    fn = {"batch_norm": lambda: batch_norm(x, w[:, 0, 0, 0], b), "conv2d": lambda: conv2d(x, w, b, padding=1)}[op]
    g = torch.autograd.grad(fn().pow(2).sum(), x, create_graph=True)[0]
    torch.autograd.grad(g.pow(2).sum(), x)  # a second derivative: fine
    with pytest.raises(RuntimeError, match="first and second derivatives only"):
        torch.autograd.grad(g.pow(2).sum(), x, create_graph=True)
