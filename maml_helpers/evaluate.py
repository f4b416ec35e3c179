"""Evaluate a trained MAML checkpoint on meta-test tasks:

    python -m maml_helpers.evaluate runs/5way1shot-so-seed0/model.pt --tasks 600

The checkpoint records its own setting (ways, shots, architecture, inner learning rate, split),
so only the evaluation itself is chosen here. Tasks are seeded: the same command prints the
same number. The last line is

    accuracy: 98.71 ± 0.35 % (600 tasks)

(mean query accuracy after --steps inner steps, and the half-width of its 95% interval).

Protocol: 15 query drawings per class, sent through the network in batches holding as many
drawings per class as the run saw in meta-training (1 for the paper's settings, like the
paper's own evaluation). The network's BatchNorm uses the statistics of its batch, so the
batch's make-up is part of the test: ``--query-batch 0`` sends all 15 per class at once, a
batch the model never saw in training, and scores lower (notebook 05 shows by how much).
"""
from __future__ import annotations

import argparse
import json

import torch

from .allocator import keep_freed_memory
from .checkpoint import load_model  # noqa: F401  (public here too: notebooks import it from evaluate)
from .errors import DataError, MamlError, run_cli
from .files import atomic_write
from .maml import evaluate
from .omniglot import load_omniglot
from .setting import (available_device, check, check_drawings, nonnegative_int, output_file, positive_int,
                      seed_int, task_count, threads_int)
from .tasks import TaskSampler
from .train import eval_queries, run_split


def evaluate_checkpoint(path, tasks: int = 600, steps: int | None = None, queries: int | None = None,
                        seed: int = 0, data_dir=None, download: bool = True, device="cpu",
                        query_batch: int | None = None):
    """(accuracy, ci95, setting) of a checkpoint on seeded meta-test tasks.

    The query set goes through the network in batches of ``query_batch`` drawings per class
    (default: the run's training queries per class; 0: the whole set at once), because
    BatchNorm's batch statistics make the batch part of the input (``maml.forward_in_batches``).
    """
    # Every argument and the checkpoint are checked before the data is loaded.
    tasks = check("--tasks", tasks, task_count)
    seed = check("--seed", seed, seed_int)
    device = check("--device", device, available_device)
    model, state = load_model(path)
    config = state["config"]
    queries = eval_queries(config["shots"]) if queries is None else check("--queries", queries, positive_int)
    check_drawings(config["shots"], queries, shots_name="the checkpoint's shots")
    steps = config["test_steps"] if steps is None else check("--steps", steps, nonnegative_int)
    query_batch = (config["queries"] if query_batch is None
                   else check("--query-batch", query_batch, nonnegative_int) or queries)
    if queries % query_batch:
        raise MamlError(f"{queries} query drawings per class do not split into batches of {query_batch} "
                        f"per class. Choose --queries as a multiple of {query_batch}, or --query-batch 0 "
                        "(the whole query set at once).")
    data = load_omniglot(data_dir, download=download)
    if state.get("data_fingerprint") not in (None, data.fingerprint):
        raise DataError("This checkpoint was trained on a different copy of Omniglot (content "
                        "fingerprints differ), so its test split is not comparable.")
    split = run_split(data, config)
    sampler = TaskSampler(data.images, split["test"], config["ways"], config["shots"], queries, split="test")
    acc, ci = evaluate(model.to(device), sampler, config["inner_lr"], steps, tasks=tasks, seed=seed,
                       device=device, query_batch=query_batch)
    return acc, ci, {**config, "eval_steps": steps, "eval_queries": queries, "eval_query_batch": query_batch}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m maml_helpers.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--tasks", type=task_count, default=600)
    p.add_argument("--steps", type=nonnegative_int, help="inner steps at test (default: the checkpoint's)")
    p.add_argument("--queries", type=positive_int, help="query drawings per class (default: 15, or 20 - shots)")
    p.add_argument("--query-batch", type=nonnegative_int, metavar="K",
                   help="send the query set through the network K drawings per class at a time "
                        "(default: as in the checkpoint's training, 1 for our runs; 0: all at once)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the test tasks")
    p.add_argument("--data", help="folder with the Omniglot zips")
    p.add_argument("--no-download", action="store_true")
    p.add_argument("--device", type=available_device, default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", type=output_file, help="also write the result to this file (atomically)")
    p.add_argument("--threads", type=threads_int, help="torch.set_num_threads (default: torch's choice)")
    args = p.parse_args(argv)
    keep_freed_memory()  # allocator.py: faster on CPU, the same numbers
    if args.threads:
        torch.set_num_threads(args.threads)
    acc, ci, setting = evaluate_checkpoint(args.checkpoint, args.tasks, args.steps, args.queries,
                                           args.seed, args.data, not args.no_download, args.device,
                                           args.query_batch)
    print(f"setting: {setting['ways']}-way {setting['shots']}-shot, {setting['arch']} net, "
          f"{'first' if setting['first_order'] else 'second'}-order training, "
          f"{setting['eval_steps']} inner steps at lr {setting['inner_lr']}, "
          f"{setting['eval_queries']} queries per class in batches of {setting['eval_query_batch']} "
          f"per class, {args.tasks} test tasks (seed {args.seed})")
    if args.json:
        record = {"accuracy": round(100 * acc, 2), "ci95": round(100 * ci, 2), "tasks": args.tasks,
                  "seed": args.seed, **{k: setting[k] for k in ("ways", "shots", "arch", "first_order",
                                                               "inner_lr", "eval_steps", "eval_queries",
                                                               "eval_query_batch")}}
        atomic_write(args.json, lambda f: f.write(json.dumps(record, indent=2).encode()))
    print(f"accuracy: {100 * acc:.2f} ± {100 * ci:.2f} % ({args.tasks} tasks)")
    return 0


if __name__ == "__main__":
    run_cli(main)
