"""Seconds per MAML meta-iteration, second and first order:

    python -m maml_helpers.bench --ways 5 --shots 1 --queries 1 --arch strided

Uses random images of Omniglot's shape (the time of a meta-step does not depend on the
pixels), so it runs without the data set. Each order is warmed up, then timed over
--iterations meta-steps, interleaved; the median and quartiles are printed and, with
--json, written to a file.
"""
from __future__ import annotations

import argparse
import json
import platform

import torch

from .errors import run_cli
from .files import atomic_write
from .maml import META_LR, meta_step, paper_defaults
from .model import ARCHITECTURES, ConvNet
from .tasks import TaskBatch
from .timing import compare_timings, timing_table


def random_tasks(batch: int, ways: int, shots: int, queries: int, seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    labels = lambda k: torch.arange(ways).repeat_interleave(k).repeat(batch, 1)
    return TaskBatch(torch.rand(batch, ways * shots, 1, 28, 28, generator=g), labels(shots),
                     torch.rand(batch, ways * queries, 1, 28, 28, generator=g), labels(queries), None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m maml_helpers.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--queries", type=int, default=1)
    p.add_argument("--meta-batch", type=int)
    p.add_argument("--inner-steps", type=int)
    p.add_argument("--arch", choices=ARCHITECTURES, default="strided")
    p.add_argument("--iterations", type=int, default=5, help="timed meta-steps per order")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    d = paper_defaults(args.ways)
    batch = args.meta_batch or d["meta_batch"]
    steps = args.inner_steps or d["train_steps"]
    tasks = random_tasks(batch, args.ways, args.shots, args.queries)
    torch.manual_seed(0)
    model = ConvNet(args.ways, arch=args.arch)
    opt = torch.optim.Adam(model.parameters(), lr=META_LR)
    step = lambda fo: (lambda: meta_step(model, opt, tasks, d["inner_lr"], steps, first_order=fo))
    results = compare_timings({"second order": step(False), "first order": step(True)},
                              rounds=max(2, args.iterations), warmup=args.warmup)
    setting = (f"{args.ways}-way {args.shots}-shot, {args.queries} queries/class, meta-batch {batch}, "
               f"{steps} inner step(s), {args.arch} net, {torch.get_num_threads()} threads")
    print(setting)
    print(timing_table(results, baseline="second order", unit="s"))
    record = {"setting": {"ways": args.ways, "shots": args.shots, "queries": args.queries,
                          "meta_batch": batch, "inner_steps": steps, "arch": args.arch,
                          "threads": torch.get_num_threads()},
              "machine": platform.machine(), "torch": str(torch.__version__),
              "seconds_per_iteration": {name: {"median": t.median, "q1": t.iqr[0], "q3": t.iqr[1],
                                               "samples": t.samples} for name, t in results.items()}}
    if args.json:
        atomic_write(args.json, lambda f: f.write(json.dumps(record, indent=2).encode()))
    return 0


if __name__ == "__main__":
    run_cli(main)
