"""N-way K-shot tasks: the unit MAML learns from.

A task picks N classes, gives K labelled drawings of each (the support set, for the inner
loop) and Q more of each (the query set, for the outer loop). Labels 0..N-1 are shuffled
per task, so a class has no fixed label and the model must learn from the support set.
A class is a character at one of four rotations (0/90/180/270 degrees), as in the paper.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .errors import TaskShapeError
from .setting import check, positive_int


@dataclass
class TaskBatch:
    """A batch of B tasks as stacked tensors.

    support_x: (B, N*K, 1, 28, 28) float32 in [0, 1]   support_y: (B, N*K) int64 labels
    query_x:   (B, N*Q, 1, 28, 28)                      query_y:   (B, N*Q)
    classes:   (B, N, 2) the (character index, rotation) behind labels 0..N-1
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.support_x)

    def task(self, b: int):
        """The b-th task as (support_x, support_y, query_x, query_y)."""
        return self.support_x[b], self.support_y[b], self.query_x[b], self.query_y[b]

    def to(self, device) -> "TaskBatch":
        return TaskBatch(self.support_x.to(device), self.support_y.to(device),
                         self.query_x.to(device), self.query_y.to(device), self.classes)


class TaskSampler:
    """Draws reproducible N-way K-shot tasks from a set of characters.

    images:     uint8 (characters, drawings, H, W), e.g. ``Omniglot.images``
    characters: indices into ``images`` that this sampler may use (a split)
    rotations:  quarter turns that make extra classes; (0,) for none
    split:      the split's name ('train', 'val', 'test'), for messages
    """

    def __init__(self, images: np.ndarray, characters: Sequence[int], ways: int, shots: int,
                 queries: int, rotations: Sequence[int] = (0, 1, 2, 3), split: str | None = None):
        characters = np.asarray(characters, dtype=np.int64)
        n_classes, drawings = len(characters) * len(rotations), images.shape[1]
        for name, value in (("ways", ways), ("shots", shots), ("queries", queries)):
            check(name, value, positive_int, TaskShapeError)
        if ways > n_classes:
            held_out = " (--validation sets how many characters it holds)" if split in ("train", "val") else ""
            raise TaskShapeError(
                f"Cannot draw a {ways}-way task: the {split or 'given'} split{held_out} has only "
                f"{n_classes} classes ({len(characters)} characters x {len(rotations)} rotations). "
                f"Use --ways {n_classes} or fewer.")
        if shots + queries > drawings:
            raise TaskShapeError(
                f"Cannot draw {shots} shots + {queries} queries per class: every character has "
                f"only {drawings} drawings. Use shots + queries <= {drawings}.")
        self.characters, self.rotations = characters, tuple(rotations)
        self.ways, self.shots, self.queries = ways, shots, queries
        # Converted once: the split as float32 in [0, 1] (about 100 MB for all of Omniglot).
        self.pixels = torch.from_numpy(images[characters]).float().div_(255)

    @property
    def num_classes(self) -> int:
        return len(self.characters) * len(self.rotations)

    def sample(self, batch_size: int, seed: int | Sequence[int]) -> TaskBatch:
        """``batch_size`` tasks drawn from ``np.random.default_rng(seed)``: same seed, same tasks."""
        rng = np.random.default_rng(seed)
        n, k, q = self.ways, self.shots, self.queries
        sx, sy, qx, qy, classes = [], [], [], [], []
        for _ in range(batch_size):
            picked = rng.choice(self.num_classes, size=n, replace=False)
            labels = rng.permutation(n)  # class picked[i] gets label labels[i]
            xs, ys, xq, yq, cls = [], [], [], [], np.empty((n, 2), np.int64)
            for i, c in enumerate(picked):
                char, rot = divmod(int(c), len(self.rotations))
                turns = self.rotations[rot]
                drawings = rng.choice(self.pixels.shape[1], size=k + q, replace=False)
                imgs = torch.rot90(self.pixels[char, drawings], turns, dims=(1, 2)).unsqueeze(1)
                xs.append(imgs[:k]); xq.append(imgs[k:])
                ys += [labels[i]] * k; yq += [labels[i]] * q
                cls[labels[i]] = (self.characters[char], turns)
            sx.append(torch.cat(xs)); qx.append(torch.cat(xq))
            sy.append(torch.tensor(ys)); qy.append(torch.tensor(yq)); classes.append(cls)
        return TaskBatch(torch.stack(sx), torch.stack(sy), torch.stack(qx), torch.stack(qy),
                         np.stack(classes))


def random_tasks(batch: int, ways: int, shots: int, queries: int, seed: int = 0) -> TaskBatch:
    """Tasks of random images of Omniglot's shape: enough to time or test a meta-step, whose
    cost does not depend on the pixels."""
    g = torch.Generator().manual_seed(seed)
    labels = lambda k: torch.arange(ways).repeat_interleave(k).repeat(batch, 1)
    return TaskBatch(torch.rand(batch, ways * shots, 1, 28, 28, generator=g), labels(shots),
                     torch.rand(batch, ways * queries, 1, 28, 28, generator=g), labels(queries), None)
