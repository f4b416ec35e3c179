"""Seeding: every printed number in a notebook must come out the same on a re-run."""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and PyTorch's global generators; return the seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed
