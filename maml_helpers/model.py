"""The paper's Omniglot network, meant to be called functionally.

4 x [conv 3x3, 64 filters, BatchNorm, ReLU] then a linear head (Finn et al. 2017, after
Vinyals et al. 2016). Downsampling is by stride 2 ('strided', the paper's Omniglot choice)
or by 2x2 max-pooling ('maxpool'). BatchNorm always uses the statistics of the batch at
hand (``track_running_stats=False``, as the paper's code): there are no running averages
that fast weights would have to carry. As in the paper's code, the last feature map is
averaged over space, so the head sees 64 features for any image size.

MAML never mutates this module: fast weights are a dict of tensors passed to
``torch.func.functional_call(model, params, x)`` (see maml.py).
"""
from __future__ import annotations

import torch
from torch import nn

ARCHITECTURES = ("strided", "maxpool")


class ConvNet(nn.Module):
    def __init__(self, ways: int, hidden: int = 64, arch: str = "strided", in_channels: int = 1):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")
        layers, channels = [], in_channels
        for _ in range(4):
            stride = 2 if arch == "strided" else 1
            layers += [nn.Conv2d(channels, hidden, 3, stride=stride, padding=1),
                       nn.BatchNorm2d(hidden, track_running_stats=False),
                       nn.ReLU()]
            if arch == "maxpool":
                layers.append(nn.MaxPool2d(2))
            channels = hidden
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(hidden, ways)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))
