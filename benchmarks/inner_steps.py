"""Where a 20-way meta-step's time goes: cost against the number of inner steps, and a profile.

    python benchmarks/inner_steps.py --threads 1 > benchmarks/inner_steps.txt

20-way 1-shot, 1 query per class, meta-batch 16, strided net (the paper's 20-way setting).
For 1, 2, 3 and 5 inner steps it times our batched meta-step (second and first order) and
`higher` (second order) in interleaved rounds, and prints what each extra inner step adds.
Then it profiles one batched second-order meta-step with 5 inner steps and lists the
operators by their own CPU time.
"""
from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from maml_helpers import allocator
from maml_helpers.batched import batched_meta_gradient
from maml_helpers.bench import higher_meta_gradient
from maml_helpers.maml import params_of
from maml_helpers.model import ConvNet
from maml_helpers.tasks import random_tasks
from maml_helpers.timing import compare_timings

WAYS, SHOTS, QUERIES, META_BATCH, INNER_LR = 20, 1, 1, 16, 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    allocator.keep_freed_memory()
    tasks = random_tasks(META_BATCH, WAYS, SHOTS, QUERIES)
    torch.manual_seed(0)
    model = ConvNet(WAYS, arch="strided")
    params = params_of(model)
    print(f"{WAYS}-way {SHOTS}-shot, {QUERIES} query per class, meta-batch {META_BATCH}, strided net, "
          f"torch {torch.__version__}, {args.threads} thread(s); median s per meta-step of {args.rounds} rounds")
    print(f"{'inner steps':>11s} {'batched 2nd':>12s} {'batched 1st':>12s} {'higher 2nd':>11s} {'higher/batched':>15s}")
    rows = {}
    for steps in (1, 2, 3, 5):
        fns = {"batched 2nd": lambda: batched_meta_gradient(model, params, tasks, INNER_LR, steps),
               "batched 1st": lambda: batched_meta_gradient(model, params, tasks, INNER_LR, steps, first_order=True),
               "higher 2nd": lambda: higher_meta_gradient(model, tasks, INNER_LR, steps)}
        rows[steps] = {k: t.median for k, t in compare_timings(fns, rounds=args.rounds, warmup=1).items()}
        r = rows[steps]
        print(f"{steps:>11d} {r['batched 2nd']:>12.3f} {r['batched 1st']:>12.3f} {r['higher 2nd']:>11.3f} "
              f"{r['higher 2nd'] / r['batched 2nd']:>14.2f}x", flush=True)
    print("each inner step after the first adds (s):",
          ", ".join(f"{k} {(rows[5][k] - rows[1][k]) / 4:.3f}" for k in rows[1]))

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        batched_meta_gradient(model, params, tasks, INNER_LR, 5)
    print("\nprofile of one batched second-order meta-step, 5 inner steps (with the profiler's overhead):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
