"""All tasks of a meta-batch in one forward pass: the same MAML, fewer and bigger kernels.

The per-task loop in maml.py runs the network 32 times on 5 images each; at that size a
CPU spends its time on overhead, not arithmetic. Here every parameter gets a leading task
dimension (task b's fast weights are ``params[name][b]``) and the B tasks run together:

* images are laid out as (n, B*C, H, W): image i of every task side by side, task b owning
  channels b*C..(b+1)*C-1;
* a convolution with ``groups=B`` then applies task b's filters to task b's channels only;
* ``F.batch_norm`` on that layout normalises each (task, channel) over (n, H, W): exactly
  the per-task batch statistics that the loop computes;
* the losses of the tasks are summed, so d(sum)/d(fast weights of task b) is task b's own
  gradient, and theta enters as ``theta.expand(B, ...)``, whose backward sums the tasks'
  meta-gradients.

Nothing is approximated: ``tests/test_batched.py`` checks the meta-gradient against the loop's
in float64, BatchNorm affine parameters and several inner steps included.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import double_backward
from .maml import Params
from .model import ConvNet
from .tasks import TaskBatch


def batched_forward(model: ConvNet, params: Params, x: torch.Tensor, hand_derived: bool = True) -> torch.Tensor:
    """Logits (B, n, ways) of B tasks' images x (B, n, C, H, W) under their own weights.

    ``params[name]`` has shape (B, *parameter shape): one set of (fast) weights per task.
    ``hand_derived`` picks double_backward.py's convolution and BatchNorm (the same values
    and derivatives, cheaper second derivatives) over PyTorch's own.
    """
    bn = double_backward.batch_norm if hand_derived else (
        lambda h, w, b, eps: F.batch_norm(h, None, None, w, b, training=True, eps=eps))
    if not isinstance(model, ConvNet):
        raise TypeError(f"batched_forward runs maml_helpers.model.ConvNet, not {type(model).__name__}")
    tasks, n = x.shape[:2]
    h = x.transpose(0, 1).reshape(n, tasks * x.shape[2], *x.shape[3:]).contiguous()
    for name, layer in model.features.named_children():
        key = f"features.{name}."
        if isinstance(layer, nn.Conv2d):
            w, b = params[key + "weight"], params[key + "bias"]
            if hand_derived:  # a bank of filters per task; theta.expand(...) runs as one plain conv
                h = double_backward.conv2d(h, w, b, layer.stride, layer.padding)
            else:
                h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), b.reshape(-1), layer.stride, layer.padding,
                             groups=tasks)
        elif isinstance(layer, nn.BatchNorm2d):
            h = bn(h, params[key + "weight"].reshape(-1), params[key + "bias"].reshape(-1), layer.eps)
        elif isinstance(layer, (nn.ReLU, nn.MaxPool2d)):
            h = layer(h)
        else:
            raise TypeError(f"batched_forward does not know layer {type(layer).__name__}")
    features = h.mean(dim=(2, 3)).reshape(n, tasks, -1)  # (n, B, hidden)
    return torch.einsum("nbh,boh->bno", features, params["head.weight"]) + params["head.bias"][:, None]


def per_task_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) mean cross-entropy of each task, from logits (B, n, ways) and labels (B, n)."""
    losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
    return losses.view(labels.shape).mean(1)


def batched_adapt(model: ConvNet, params: Params, support_x: torch.Tensor, support_y: torch.Tensor,
                  inner_lr: float, steps: int, create_graph: bool = True, hand_derived: bool = True) -> Params:
    """Every task's fast weights after ``steps`` SGD steps on its own support set."""
    for _ in range(steps):
        loss = per_task_cross_entropy(batched_forward(model, params, support_x, hand_derived), support_y).sum()
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
        params = {name: torch.add(p, g, alpha=-inner_lr) for (name, p), g in zip(params.items(), grads)}
    return params


# Tasks per pass when chunk is not given: the first layer's activations of one pass stay
# under this size. Past it they fall out of the CPU's caches; measured on the course's
# machine (5-way 1-shot, 15 queries, max-pool net, 480 MB per activation for 32 tasks):
# 4.3 s per meta-step in one pass, 2.0 s in passes of 16 or 8 tasks.
CHUNK_BYTES = 256 * 2 ** 20


def auto_chunk(model: ConvNet, tasks: TaskBatch) -> int:
    """Tasks per pass, in equal passes, so that on a CPU an activation fits CHUNK_BYTES."""
    if tasks.query_x.device.type != "cpu":
        return len(tasks)
    n = max(tasks.support_x.shape[1], tasks.query_x.shape[1])
    per_task = n * model.features[0].out_channels * tasks.query_x[0, 0, 0].numel() * tasks.query_x.element_size()
    passes = -(-len(tasks) * per_task // CHUNK_BYTES)  # ceiling divisions
    return -(-len(tasks) // max(passes, 1))


def batched_meta_gradient(model: ConvNet, params: Params, tasks: TaskBatch, inner_lr: float,
                          steps: int, first_order: bool = False, loss_fn=F.cross_entropy,
                          chunk: int | None = None, hand_derived: bool = True):
    """Same contract as ``maml.meta_gradient``: (grads, mean loss, mean accuracy), so it can be
    ``maml.meta_step``'s engine. Cross-entropy only (the loss is fused per task).

    ``chunk`` tasks go through the network together (default: ``auto_chunk``, all of them
    unless an activation would pass CHUNK_BYTES); smaller chunks keep less of the
    second-order graph in memory at once.
    """
    if loss_fn is not F.cross_entropy:
        raise ValueError("the batched meta-gradient computes cross-entropy only; use maml.meta_gradient")
    theta = list(params.values())
    total = [torch.zeros_like(p) for p in theta]
    chunk = chunk or auto_chunk(model, tasks)
    losses, correct = [], []
    for start in range(0, len(tasks), chunk):
        part = slice(start, start + chunk)
        sx, sy, qx, qy = (t[part] for t in (tasks.support_x, tasks.support_y, tasks.query_x, tasks.query_y))
        # Every task starts from theta: one (B, ...) view of it, whose backward sums over tasks.
        start_params = {k: p.unsqueeze(0).expand(len(sx), *p.shape) for k, p in params.items()}
        fast = batched_adapt(model, start_params, sx, sy, inner_lr, steps, not first_order, hand_derived)
        logits = batched_forward(model, fast, qx, hand_derived)
        task_losses = per_task_cross_entropy(logits, qy)
        grads = torch.autograd.grad(task_losses.sum() / len(tasks), theta)
        for t, g in zip(total, grads):
            t.add_(g)
        losses.append(task_losses.detach())
        correct.append((logits.argmax(-1) == qy).float().mean(1))
    return total, torch.cat(losses).mean().item(), torch.cat(correct).mean().item()

