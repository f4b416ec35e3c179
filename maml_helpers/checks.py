"""Checking gradients: compare a hand-derived value with autograd's, and finite differences.

``cmp`` follows karpathy's nn-zero-to-hero: one line saying whether two values are
exactly equal, approximately equal, and how far apart they are.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64)
    return torch.as_tensor(x, dtype=torch.float64)


def cmp(name: str, hand, auto, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    """Print 'exact / approx / maxdiff' for a hand value against autograd's; return approx."""
    a, b = _as_tensor(hand), _as_tensor(auto)
    if a.shape != b.shape:
        raise ValueError(f"{name}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    exact = bool(torch.equal(a, b))
    approx = bool(torch.allclose(a, b, rtol=rtol, atol=atol))
    maxdiff = (a - b).abs().max().item() if a.numel() else 0.0
    print(f"{name:<20s} | exact: {exact!s:<5s} | approx: {approx!s:<5s} | maxdiff: {maxdiff:.2g}")
    return approx


def finite_difference_grad(
    f: Callable[[], torch.Tensor], tensors: Sequence[torch.Tensor], eps: float = 1e-6
) -> list[torch.Tensor]:
    """Central differences (f(x+eps) - f(x-eps)) / 2eps of a scalar ``f()`` w.r.t. each element.

    ``f`` reads the tensors in place, so they are nudged one element at a time and restored.
    Use float64: in float32 the rounding error of f swamps a difference of size eps.
    """
    grads = []
    with torch.no_grad():
        for t in tensors:
            if t.dtype != torch.float64:
                raise TypeError("finite differences need float64 tensors (float32 is too coarse)")
            g = torch.zeros_like(t)
            flat, gflat = t.view(-1), g.view(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + eps
                up = float(f())
                flat[i] = old - eps
                down = float(f())
                flat[i] = old
                gflat[i] = (up - down) / (2 * eps)
            grads.append(g)
    return grads


def second_derivatives(fn: Callable[..., torch.Tensor],
                       inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Gradient w.r.t. ``inputs`` of a fixed scalar built from *all* of fn's first derivatives.

    Two implementations with the same second derivatives give the same result; one whose
    double backward drops or bends a term does not. The scalar mixes every first derivative
    linearly (fixed cos weights) and quadratically, so each term of the double backward counts.
    """
    y = fn(*inputs)
    fixed = lambda t, f: f(torch.arange(t.numel(), dtype=t.dtype)).view_as(t)  # noqa: E731
    first = torch.autograd.grad((y * fixed(y, torch.sin)).sum(), inputs, create_graph=True)
    s = sum((g * g).sum() + (g * fixed(g, torch.cos)).sum() for g in first)
    return torch.autograd.grad(s, inputs, allow_unused=True, materialize_grads=True)
