"""Evaluate a trained MAML checkpoint on meta-test tasks:

    python -m maml_helpers.evaluate runs/5way1shot-so-seed0/model.pt --tasks 600

The checkpoint records its own setting (ways, shots, architecture, inner learning rate, split),
so only the evaluation itself is chosen here. Tasks are seeded: the same command prints the
same number. The last line is

    accuracy: 99.30 ± 0.17 % (600 tasks)

(mean query accuracy after --steps inner steps, and the half-width of its 95% interval).

Protocol: 15 query drawings per class, sent through the network in batches holding as many
drawings per class as the run saw in meta-training (``--queries``: the paper's code draws K
query drawings per class for a K-shot task, in training and at test). The network's BatchNorm
uses the statistics of its batch, so the batch's make-up is part of the test:
``--query-batch 0`` sends all 15 per class at once, a batch the model never saw in training,
and scores lower (notebook 05 shows by how much).
"""
from __future__ import annotations

import argparse
import json

from .cli import Progress, add_machine_flags, use_machine_flags
from .errors import run_cli
from .evaluation import checkpoint_task_accuracies, evaluation_record
from .files import atomic_write
from .setting import nonnegative_int, positive_int, seed_int, task_count


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m maml_helpers.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--tasks", type=task_count, default=600)
    p.add_argument("--steps", type=nonnegative_int, help="inner steps at test (default: the checkpoint's)")
    p.add_argument("--queries", type=positive_int, help="query drawings per class (default: 15, or 20 - shots)")
    p.add_argument("--query-batch", type=nonnegative_int, metavar="K",
                   help="send the query set through the network K drawings per class at a time "
                        "(default: as in the checkpoint's training; 0: all at once)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the test tasks")
    p.add_argument("--data", help="folder with the Omniglot zips")
    p.add_argument("--no-download", action="store_true")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_machine_flags(p, json="also write the result to this file (atomically)")
    args = p.parse_args(argv)
    use_machine_flags(args)
    progress = Progress(args.tasks, "meta-test tasks", unit="task", disable=args.no_progress)
    try:
        accs, setting = checkpoint_task_accuracies(args.checkpoint, args.tasks, args.steps, args.queries,
                                                   args.seed, args.data, not args.no_download, args.device,
                                                   args.query_batch, progress=progress)
    finally:
        progress.close()
    # The printed figure is the recorded one: both from the counts of right answers.
    record = evaluation_record(accs, setting, args.seed)
    print(f"setting: {setting['ways']}-way {setting['shots']}-shot, {setting['arch']} net, "
          f"{'first' if setting['first_order'] else 'second'}-order training, "
          f"{setting['eval_steps']} inner steps at lr {setting['inner_lr']}, "
          f"{setting['eval_queries']} queries per class in batches of {setting['eval_query_batch']} "
          f"per class, {args.tasks} test tasks (seed {args.seed})")
    if args.json:
        atomic_write(args.json, lambda f: f.write(json.dumps(record, indent=2).encode()))
    print(f"accuracy: {record['accuracy']:.2f} ± {record['ci95']:.2f} % ({args.tasks} tasks)")
    return 0


if __name__ == "__main__":
    run_cli(main)
