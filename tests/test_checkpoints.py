"""Every committed checkpoint still scores what its evaluation.json records.

evaluation.json was written by `python -m maml_helpers.evaluate <dir>/model.pt --tasks 600
--threads 1 --json ...`. Here the same 600 seeded tasks are evaluated again. On the machine
that recorded the file the result is equal to the last digit; another CPU rounds the
convolutions differently and may flip a near tie (one flip moves a 5-way figure by 0.002
points), so 0.1 points are allowed: far more than rounding, far less than the 95% interval.
Notebook 05 shows a live 100-task sample of the same figures.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from maml_helpers.evaluation import evaluate_checkpoint

CHECKPOINTS = sorted((Path(__file__).resolve().parents[1] / "checkpoints").glob("*/evaluation.json"))
TOLERANCE = 0.1  # accuracy points


def test_there_are_checkpoints():
    assert CHECKPOINTS and all((p.parent / "model.pt").exists() for p in CHECKPOINTS)


@pytest.mark.parametrize("record_path", CHECKPOINTS, ids=lambda p: p.parent.name)
def test_checkpoint_scores_its_recorded_accuracy(record_path, omniglot_dir):
    record = json.loads(record_path.read_text())
    acc, ci, setting = evaluate_checkpoint(record_path.parent / "model.pt", tasks=record["tasks"],
                                           seed=record["seed"], data_dir=omniglot_dir, download=False)
    protocol = ("eval_steps", "eval_queries", "eval_query_batch", "ways", "shots", "first_order", "inner_lr")
    assert {k: setting[k] for k in protocol} == {k: record[k] for k in protocol}
    assert record["tasks"] == 600 and record["seed"] == 0
    assert abs(100 * acc - record["accuracy"]) <= TOLERANCE, (100 * acc, record)
    assert abs(100 * ci - record["ci95"]) <= TOLERANCE
