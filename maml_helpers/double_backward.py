"""Convolution and BatchNorm whose *backward* has a hand-derived, differentiable backward.

Second-order MAML differentiates the inner loop's gradient, so autograd runs the backward
of each layer's backward ("double backward"). PyTorch's generic formulas for it are
correct but slow on the batched engine's tensors:

* BatchNorm's (``batchnorm_double_backward``) runs over 50 operations on activation-sized
  tensors; written with the five per-channel sums it needs, 12 (notebook 06 counts both);
* a grouped convolution's loops over groups (one small convolution per task and layer);
  the same term is a single grouped ``convolution_backward`` call. And where all groups
  share one filter bank (every task at theta, the first inner step), the forward and the
  input gradients run as one ordinary convolution.

``conv2d`` and ``batch_norm`` compute exactly what ``F.conv2d`` and ``F.batch_norm`` (training
mode, no running statistics) compute, with the same first and second derivatives; only the
order of floating-point operations differs. Third derivatives are not provided: asking for
one (create_graph=True through a second derivative) raises. ``tests/test_double_backward.py``
checks both orders against PyTorch's own formulas and against finite differences in float64;
notebook 06 counts and times them.

The BatchNorm derivation, per channel over its M values (x-hat = (x - mean) * s, with
s = 1/sqrt(var + eps), and y = w * x-hat + b). Its backward, for v = dL/dy:

    gx = c * (v - mean(v) - x-hat * mean(v * x-hat)),  c = w * s
    gw = sum(v * x-hat),  gb = sum(v)

Given u = d/dgx, p = d/dgw, q = d/dgb of the outer loss, and writing a = mean(v),
beta = mean(v * x-hat), u_ = mean(u), e = mean(u * x-hat), uv = mean(u * v):

    d/dv = c * u + (p - c * e) * x-hat + (q - c * u_)
    d/dw = s * M * (uv - a * u_ - beta * e)
    d/dx = s * [(p - c*e) * (v - a) - c*beta * (u - u_)
                - x-hat * (p*beta - 3*c*beta*e + c*(uv - a*u_))]

(x enters through x-hat and s; dx-hat/dx maps g to s * (g - mean(g) - x-hat * mean(g * x-hat)),
and ds/dx = -s**2 * x-hat / M.)
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch.autograd import Function


def _per_channel(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (C,) tensor shaped to broadcast over ``like``'s channel dimension (dim 1)."""
    return t.view(1, -1, *([1] * (like.dim() - 2)))


def _second_order_only(backward):
    """Refuse a graph of the double backward: a third derivative would silently miss terms.

    (``torch.autograd.function.once_differentiable`` raises only under ``.backward()``; under
    ``torch.autograd.grad`` its error node is pruned and the third derivative comes out partial.)
    """
    @functools.wraps(backward)
    def checked(ctx, *grads):
        if torch.is_grad_enabled():
            raise RuntimeError("maml_helpers.double_backward gives first and second derivatives only, and a "
                               "third one was asked for (create_graph=True through a second derivative). "
                               "Use F.conv2d / F.batch_norm instead (batched.py: hand_derived=False).")
        return backward(ctx, *grads)
    return checked


def _channel_sum(t: torch.Tensor) -> torch.Tensor:
    return t.sum(dim=[d for d in range(t.dim()) if d != 1])


class _BatchNormBackward(Function):
    """(x, w, v) -> (gx, gw, gb): BatchNorm's backward, as a function with its own backward."""

    @staticmethod
    def forward(ctx, x, weight, grad_out, mean, invstd):
        # the values are PyTorch's fused kernel's; only their derivatives are ours
        gx, gw, gb = torch.ops.aten.native_batch_norm_backward(
            grad_out, x, weight, None, None, mean, invstd, True, 0.0, [True, True, True])
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None, no zeros made
        ctx.save_for_backward(x, weight, grad_out, mean, invstd, gw, gb)
        return gx, gw, gb

    @staticmethod
    @_second_order_only
    def backward(ctx, u, p, q):
        x, weight, v, mean, s, gw, gb = ctx.saved_tensors
        m = x.numel() // x.shape[1]
        ch = lambda t: _per_channel(t, x)  # noqa: E731
        x_hat = (x - ch(mean)) * ch(s)
        a, beta = gb / m, gw / m
        u = torch.zeros_like(v) if u is None else u
        p = torch.zeros_like(weight) if p is None else p
        q = torch.zeros_like(weight) if q is None else q
        c = weight * s
        u_mean = _channel_sum(u) / m
        e = _channel_sum(u * x_hat) / m
        uv = _channel_sum(u * v) / m
        p_ce = p - c * e
        grad_v = grad_x = grad_w = None
        if ctx.needs_input_grad[2]:
            grad_v = u * ch(c)
            grad_v.addcmul_(x_hat, ch(p_ce)).add_(ch(q - c * u_mean))
        if ctx.needs_input_grad[0]:
            # d/dx = k_v * v + k_u * u + k_x * x-hat + k_1, every k per channel
            k_v, k_u = s * p_ce, -s * c * beta
            k_x = -s * (p * beta - 3 * c * beta * e + c * (uv - a * u_mean))
            grad_x = v * ch(k_v)
            grad_x.addcmul_(u, ch(k_u)).addcmul_(x_hat, ch(k_x)).sub_(ch(k_v * a + k_u * u_mean))
        if ctx.needs_input_grad[1]:
            grad_w = s * m * (uv - a * u_mean - beta * e)
        return grad_x, grad_w, grad_v, None, None


class _BatchNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        y, mean, invstd = torch.native_batch_norm(x, weight, bias, None, None, True, 0.0, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, mean, invstd = ctx.saved_tensors
        return (*_BatchNormBackward.apply(x, weight, grad_out, mean, invstd), None)


def batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)``, faster to differentiate twice."""
    return _BatchNorm.apply(x, weight, bias, eps)


class _Bank:
    """A grouped convolution's arithmetic, given its filters as a bank (groups, O, C, k, k).

    A bank whose groups share one tensor (stride 0 in dim 0, as ``theta.expand`` gives at the
    first inner step) runs its forward and input gradient as one ordinary convolution over
    all groups' images: bigger kernels, no per-group weights. The weight gradient stays
    grouped (each group gets its own).
    """

    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    @staticmethod
    def shared(bank) -> bool:
        return bank.shape[0] > 1 and bank.stride(0) == 0

    def _conv_backward(self, gy, x, w, groups, mask):
        return torch.ops.aten.convolution_backward(gy, x, w, None, self.stride, self.padding, [1, 1], False,
                                                   [0, 0], groups, mask)

    def forward(self, x, bank, bias=None):
        g, o = bank.shape[:2]
        if self.shared(bank):
            shared_bias = bias is None or bias.stride(0) == 0
            y = F.conv2d(x.reshape(-1, bank.shape[2], *x.shape[2:]), bank[0],
                         None if bias is None or not shared_bias else bias[0], self.stride, self.padding)
            y = y.view(x.shape[0], g * o, *y.shape[2:])
            return y if shared_bias else y + bias.reshape(1, -1, 1, 1)
        return F.conv2d(x, bank.reshape(g * o, *bank.shape[2:]), None if bias is None else bias.reshape(-1),
                        self.stride, self.padding, 1, g)

    def input_grad(self, gy, x, bank):
        g, o = bank.shape[:2]
        if self.shared(bank):
            flat = lambda t, c: t.reshape(-1, c, *t.shape[2:])  # noqa: E731
            return self._conv_backward(flat(gy, o), flat(x, bank.shape[2]), bank[0], 1,
                                       [True, False, False])[0].view(x.shape)
        return self._conv_backward(gy, x, bank.reshape(g * o, *bank.shape[2:]), g, [True, False, False])[0]

    def weight_grad(self, gy, x, bank):
        g, o = bank.shape[:2]
        # only the filters' shape matters to a weight gradient: a shared bank is not copied out
        shape = (g * o, *bank.shape[2:])
        w = bank.new_empty(shape) if self.shared(bank) else bank.reshape(shape)
        return self._conv_backward(gy, x, w, g, [False, True, False])[1].view(bank.shape)


class _Conv2dBackward(Function):
    """(gy, x, bank) -> (gx, g_bank, g_bias) of a convolution, as a function with its own backward."""

    @staticmethod
    def forward(ctx, grad_out, x, bank, stride, padding, needs):
        ctx.set_materialize_grads(False)
        ctx.conv = conv = _Bank(stride, padding)
        ctx.save_for_backward(grad_out, x, bank)
        return (conv.input_grad(grad_out, x, bank) if needs[0] else None,
                conv.weight_grad(grad_out, x, bank) if needs[1] else None,
                grad_out.sum((0, 2, 3)).view(bank.shape[:2]) if needs[2] else None)

    @staticmethod
    @_second_order_only
    def backward(ctx, gg_x, gg_bank, gg_b):
        # gx is linear in (gy, w), gw in (gy, x), gb in gy: each term below is one such product.
        grad_out, x, bank = ctx.saved_tensors
        conv = ctx.conv
        d_gy = d_x = d_bank = None
        if ctx.needs_input_grad[0]:
            terms = [conv.forward(gg_x, bank) if gg_x is not None else None,
                     conv.forward(x, gg_bank) if gg_bank is not None else None,
                     gg_b.reshape(1, -1, 1, 1).expand_as(grad_out) if gg_b is not None else None]
            for t in terms:
                if t is not None:
                    d_gy = t if d_gy is None else d_gy + t
        if ctx.needs_input_grad[1] and gg_bank is not None:
            d_x = conv.input_grad(grad_out, x, gg_bank)
        if ctx.needs_input_grad[2] and gg_x is not None:
            d_bank = conv.weight_grad(grad_out, gg_x, bank)
        return d_gy, d_x, d_bank, None, None, None


class _Conv2d(Function):
    @staticmethod
    def forward(ctx, x, bank, bias, stride, padding):
        ctx.conf = (stride, padding)
        ctx.save_for_backward(x, bank)
        return _Bank(stride, padding).forward(x, bank, bias)

    @staticmethod
    def backward(ctx, grad_out):
        x, bank = ctx.saved_tensors
        grads = _Conv2dBackward.apply(grad_out, x, bank, *ctx.conf, ctx.needs_input_grad[:3])
        return (*grads, None, None)


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride=1, padding=0,
           groups: int = 1) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding, groups=groups)``, faster to differentiate twice.

    ``weight`` may also be a bank of shape (groups, O, C, k, k), with ``bias`` (groups, O):
    group g's filters are ``weight[g]``. Gradients then keep that shape, and a bank whose
    groups are one expanded tensor runs as an ordinary convolution (see ``_Bank``).
    """
    pair = lambda v: [v, v] if isinstance(v, int) else list(v)  # noqa: E731
    if weight.dim() == 5:
        return _Conv2d.apply(x, weight, bias, pair(stride), pair(padding))
    bank = weight.reshape(groups, weight.shape[0] // groups, *weight.shape[1:])
    bias = None if bias is None else bias.reshape(groups, -1)
    return _Conv2d.apply(x, bank, bias, pair(stride), pair(padding))
