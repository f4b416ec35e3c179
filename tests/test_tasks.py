"""The N-way K-shot sampler: shapes, reproducibility, disjoint support/query, clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from maml_helpers.errors import TaskShapeError
from maml_helpers.tasks import TaskSampler


@pytest.fixture()
def tagged_images():
    """30 characters x 20 drawings whose pixels (0, 0) and (0, 1) say which they are."""
    images = np.zeros((30, 20, 28, 28), np.uint8)
    images[:, :, 0, 0] = np.arange(30)[:, None]
    images[:, :, 0, 1] = np.arange(20)[None, :]
    return images


def identity(x):  # (n, 1, 28, 28) float in [0, 1] -> list of (character, drawing)
    ids = (x[:, 0, 0, :2] * 255).round().long()
    return [tuple(r) for r in ids.tolist()]


def test_shapes_and_labels(tagged_images):
    s = TaskSampler(tagged_images, range(30), ways=5, shots=2, queries=3)
    t = s.sample(4, seed=0)
    assert t.support_x.shape == (4, 10, 1, 28, 28) and t.query_x.shape == (4, 15, 1, 28, 28)
    assert t.support_y.shape == (4, 10) and t.query_y.shape == (4, 15)
    for b in range(4):
        assert sorted(t.support_y[b].tolist()) == sorted(list(range(5)) * 2)
        assert sorted(t.query_y[b].tolist()) == sorted(list(range(5)) * 3)
    assert t.support_x.dtype == torch.float32 and 0 <= t.support_x.min() <= t.support_x.max() <= 1
    assert s.num_classes == 120  # 30 characters x 4 rotations


def test_same_seed_same_tasks_and_labels_are_shuffled(tagged_images):
    s = TaskSampler(tagged_images, range(30), ways=5, shots=1, queries=1, rotations=(0,))
    a, b, c = s.sample(8, seed=[3, 7]), s.sample(8, seed=[3, 7]), s.sample(8, seed=[3, 8])
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_y, b.query_y)
    assert not torch.equal(a.support_x, c.support_x)
    # a class's label is not tied to its index: label 0 is many different characters
    assert len({int(a.classes[i, 0, 0]) for i in range(8)}) > 3
    # and labels follow the class: support and query of one label come from one character
    for i in range(8):
        sx, sy, qx, qy = a.task(i)
        for label in range(5):
            chars = {c for c, _ in identity(sx[sy == label]) + identity(qx[qy == label])}
            assert chars == {int(a.classes[i, label, 0])}


def test_support_and_query_drawings_are_disjoint(tagged_images):
    s = TaskSampler(tagged_images, range(30), ways=5, shots=5, queries=15, rotations=(0,))
    t = s.sample(6, seed=1)
    for i in range(6):
        sx, _, qx, _ = t.task(i)
        support, query = identity(sx), identity(qx)
        assert len(set(support)) == 25 and len(set(query)) == 75 and not set(support) & set(query)


def test_rotations_are_quarter_turns(tagged_images):
    s = TaskSampler(tagged_images, [4], ways=4, shots=1, queries=1)
    t = s.sample(1, seed=0)
    for label in range(4):
        turns = int(t.classes[0, label, 1])
        img = t.support_x[0][t.support_y[0] == label][0, 0]
        drawing = int(np.argmax([torch.equal(img, torch.rot90(torch.from_numpy(tagged_images[4, d]).float() / 255, turns))
                                 for d in range(20)]))
        assert torch.equal(img, torch.rot90(torch.from_numpy(tagged_images[4, drawing]).float() / 255, turns))
    assert sorted(int(t.classes[0, l, 1]) for l in range(4)) == [0, 1, 2, 3]


@pytest.mark.parametrize("kwargs, message", [
    (dict(ways=121, shots=1, queries=1), "only 120 classes"),
    (dict(ways=5, shots=6, queries=15), "only 20 drawings"),
    (dict(ways=5, shots=0, queries=1), "shots must be a positive integer"),
    (dict(ways=0, shots=1, queries=1), "ways must be a positive integer"),
])
def test_impossible_tasks_are_refused(tagged_images, kwargs, message):
    with pytest.raises(TaskShapeError, match=message):
        TaskSampler(tagged_images, range(30), **kwargs)


def test_real_tasks(omniglot):
    split = omniglot.splits()
    t = TaskSampler(omniglot.images, split["test"], ways=20, shots=5, queries=15).sample(2, seed=0)
    assert t.support_x.shape == (2, 100, 1, 28, 28)
    assert set(t.classes[:, :, 0].flatten()) <= set(split["test"].tolist())
