"""Every committed checkpoint still scores what its evaluation.json records.

evaluation.json is written by `python -m maml_helpers.evaluate <dir>/model.pt --tasks 600
--threads 1 --json ...`: the figure, its protocol, and the number of correct query answers on
each of the 600 seeded tasks. Two checks:

- the figure is the mean of those counts, and its 95% interval, exactly as printed;
- the model, evaluated again, answers the first 100 of those tasks as recorded. On the
  machine that wrote the file every count is equal. Another CPU rounds the convolutions
  differently and may flip a near tie, so the answers that differ may add up to 0.1% of the
  sample's queries. Measured under tools/portable.py's settings: 0 of 7,500 answers differ at
  5-way, 1 of 30,000 at 20-way; two 5-way 5-shot models 0.28 points apart differ in 30 of 7,500.

The first tasks are the same tasks in a shorter run (``evaluation.task_accuracies``), so a
sample checks the same model on the same tasks as all 600 do, in a sixth of the time (all 600
tasks of a 20-way checkpoint take about 4 minutes on 2 cores). MAML_CHECKPOINT_TASKS=600
re-evaluates every task: do that before committing a checkpoint. Notebook 05 shows a live
50-task sample of the same figures.
"""
from __future__ import annotations

import json
import os

import pytest
import torch

from maml_helpers.checkpoint import load_model
from maml_helpers.evaluation import checkpoint_task_accuracies, correct_answers, mean_and_ci95
from maml_helpers.train import SCHEDULE_KEYS
from support import REPO

CHECKPOINTS = sorted((REPO / "checkpoints").glob("*/evaluation.json"))
PROTOCOL = ("eval_steps", "eval_queries", "eval_query_batch", "ways", "shots", "first_order", "inner_lr")
FLIPS = 0.001  # of the sample's query answers


def sample_size() -> int:
    value = os.environ.get("MAML_CHECKPOINT_TASKS", "100")
    if not (value.isdigit() and 0 < int(value) <= 600 and int(value) % 50 == 0):
        pytest.fail(f"MAML_CHECKPOINT_TASKS={value!r}: give a multiple of 50 from 50 to 600 (the "
                    "evaluation draws tasks 50 at a time), e.g. 600 for every recorded task.")
    return int(value)


def test_there_are_checkpoints():
    assert CHECKPOINTS and all((p.parent / "model.pt").exists() for p in CHECKPOINTS)


@pytest.mark.parametrize("record_path", CHECKPOINTS, ids=lambda p: p.parent.name)
def test_recorded_figure_is_the_mean_of_its_tasks(record_path):
    record = json.loads(record_path.read_text())
    assert record["tasks"] == 600 and record["seed"] == 0
    correct = record["correct_per_task"]
    assert len(correct) == 600 and all(0 <= c <= record["queries_per_task"] for c in correct)
    assert record["queries_per_task"] == record["ways"] * record["eval_queries"]
    acc, ci = mean_and_ci95(torch.tensor(correct, dtype=torch.float64) / record["queries_per_task"])
    assert (record["accuracy"], record["ci95"]) == (round(100 * acc, 2), round(100 * ci, 2))


@pytest.mark.parametrize("record_path", CHECKPOINTS, ids=lambda p: p.parent.name)
def test_checkpoint_answers_its_recorded_tasks(record_path, omniglot_dir):
    record, tasks = json.loads(record_path.read_text()), sample_size()
    accs, setting = checkpoint_task_accuracies(record_path.parent / "model.pt", tasks=tasks, seed=record["seed"],
                                               data_dir=omniglot_dir, download=False)
    assert {k: setting[k] for k in PROTOCOL} == {k: record[k] for k in PROTOCOL}
    correct = correct_answers(accs, record["queries_per_task"])
    recorded = torch.tensor(record["correct_per_task"][:tasks])
    differ = (correct - recorded).abs().sum().item()
    assert differ <= FLIPS * tasks * record["queries_per_task"], (differ, correct.tolist(), recorded.tolist())


# ---------------------------------------------------------------- runs still training

IN_PROGRESS = sorted((REPO / "checkpoints" / "in-progress").glob("*/checkpoint.pt"))


@pytest.mark.parametrize("path", IN_PROGRESS, ids=lambda p: p.parent.name)
def test_a_run_in_progress_can_be_continued_and_is_reported_as_it_stands(path):
    """A run still training is committed whole (what --resume needs: checkpoint.pt, and model.pt
    once it has validated), and checkpoints/README.md's table of runs in progress gives its
    iteration, its planned total and its best validation as the checkpoint records them."""
    _, state = load_model(path, training=True)  # weights_only, CRCs, finite tensors, what --resume needs
    name, best = path.parent.name, state["best"]
    assert state["curve"][-1]["iteration"] == state["iteration"]
    if best["iteration"]:  # the best weights so far, of the same run (--resume may change its schedule)
        _, saved = load_model(path.parent / "model.pt")
        setting = lambda config: {k: v for k, v in config.items() if k not in SCHEDULE_KEYS}
        assert setting(saved["config"]) == setting(state["config"]) and saved["best"] == best
    rows = [line for line in (REPO / "checkpoints" / "README.md").read_text(encoding="utf-8").splitlines()
            if line.startswith(f"| `in-progress/{name}` |")]
    assert len(rows) == 1, f"checkpoints/README.md needs one row for in-progress/{name}"
    assert f"{state['iteration']:,} of {state['planned_iterations']:,}" in rows[0], rows[0]
    if best["iteration"]:
        figure = f"{100 * best['val_acc']:.2f} ± {100 * best['val_ci95']:.2f} % (it. {best['iteration']:,})"
        assert figure in rows[0], f"the row should give the best validation as {figure}: {rows[0]}"
