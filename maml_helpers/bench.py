"""Seconds per MAML meta-iteration, for every way of computing it:

    python -m maml_helpers.bench --ways 5 --shots 1 --queries 1 --arch strided
    python -m maml_helpers.bench --compare --json bench.json     # all settings, and `higher`

Contenders compute the same meta-gradient: our per-task loop (maml.py) and our batched
meta-step (batched.py), each in second and first order; the batched second order once more
with PyTorch's own double-backward formulas instead of double_backward.py's; and, with
--compare, Facebook Research's `higher` library (second order; `pip install higher`).
Before timing, every contender's gradient is compared with the loop's (max |difference| is
printed: float32 rounding only; the float64 proofs are in tests/). Each is warmed up, then
timed in interleaved rounds (median and quartiles). Achieved GFLOP/s use the FLOPs that
torch.utils.flop_counter counts in one call, next to a torch.mm 2048x2048 float32 rate
measured in the same run; the FLOPs are the loop's for every contender of the same order
(the same arithmetic; the counter overcounts grouped convolutions' backward). Random images
of Omniglot's shape are used: the time of a meta-step does not depend on the pixels, so no
data set is needed.

With --compare the summary lines give, for every setting, higher's median time over our
fastest second-order contender's: `speedup_vs_higher[SETTING]: X.XX (contender)`, and last
`speedup_vs_higher: X.XX` for 5-way 1-shot, 1 query per class, meta-batch 32, strided net
(the paper's Omniglot setting).

By default the process first tells glibc to keep freed memory for reuse (allocator.py),
which applies to every contender alike; `--malloc default` measures without it.
"""
from __future__ import annotations

import argparse
import json
import platform

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from .batched import batched_meta_gradient
from .cli import add_machine_flags, use_machine_flags
from .errors import MamlError, run_cli
from .files import atomic_write
from .maml import meta_gradient, paper_defaults, params_of
from .model import ARCHITECTURES, ConvNet
from .setting import flag, nonnegative_int, positive_int, timing_rounds, ways_int
from .tasks import TaskBatch, random_tasks
from .timing import compare_timings, matmul_gflops

# name: (ways, shots, queries per class, meta-batch, inner steps, arch), as in the paper
COMPARE_SETTINGS = {
    "5w1s-1q-strided": (5, 1, 1, 32, 1, "strided"),
    "5w1s-15q-strided": (5, 1, 15, 32, 1, "strided"),
    "5w1s-1q-maxpool": (5, 1, 1, 32, 1, "maxpool"),
    "5w1s-15q-maxpool": (5, 1, 15, 32, 1, "maxpool"),
    "20w1s-1q-5steps-strided": (20, 1, 1, 16, 5, "strided"),
    "20w1s-1q-5steps-maxpool": (20, 1, 1, 16, 5, "maxpool"),
}
HEADLINE = "5w1s-1q-strided"
HIGHER = "higher, second order"
PYTORCH_DOUBLE_BACKWARD = "batched, torch formulas"  # second order, PyTorch's double backward
CONTENDERS = ("loop, second order", "batched, second order", "loop, first order", "batched, first order",
              PYTORCH_DOUBLE_BACKWARD, HIGHER)


def higher_meta_gradient(model, tasks: TaskBatch, inner_lr: float, steps: int):
    """The meta-gradient the way `higher`'s README teaches: a differentiable SGD per task."""
    try:
        import higher
    except ImportError:
        raise MamlError("--compare times the `higher` library, which is not installed. "
                        "Install it with:  pip install higher") from None
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    inner_opt = torch.optim.SGD(params, lr=inner_lr)
    for b in range(len(tasks)):
        support_x, support_y, query_x, query_y = tasks.task(b)
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
            for _ in range(steps):
                diffopt.step(F.cross_entropy(fmodel(support_x), support_y))
            loss = F.cross_entropy(fmodel(query_x), query_y) / len(tasks)
            for t, g in zip(total, torch.autograd.grad(loss, params)):
                t.add_(g)
    return total


def contenders(model, tasks: TaskBatch, inner_lr: float, steps: int, with_higher: bool) -> dict:
    """name -> (function returning the meta-gradient, name of the loop it must equal)."""
    params = params_of(model)
    fns = {}
    for order, fo in (("second order", False), ("first order", True)):
        fns[f"loop, {order}"] = (lambda fo=fo: meta_gradient(model, params, tasks, inner_lr, steps, fo)[0],
                                 f"loop, {order}")
        fns[f"batched, {order}"] = (lambda fo=fo: batched_meta_gradient(model, params, tasks, inner_lr,
                                                                        steps, fo)[0], f"loop, {order}")
    fns[PYTORCH_DOUBLE_BACKWARD] = (lambda: batched_meta_gradient(model, params, tasks, inner_lr, steps,
                                                                   hand_derived=False)[0], "loop, second order")
    if with_higher:
        fns[HIGHER] = (lambda: higher_meta_gradient(model, tasks, inner_lr, steps), "loop, second order")
    return fns


def bench_setting(ways, shots, queries, meta_batch, steps, arch, rounds, warmup, with_higher,
                  only: list[str] | None = None) -> dict:
    tasks = random_tasks(meta_batch, ways, shots, queries)
    torch.manual_seed(0)
    model = ConvNet(ways, arch=arch)
    inner_lr = paper_defaults(ways)["inner_lr"]
    fns = contenders(model, tasks, inner_lr, steps, with_higher)
    if only:  # the timed ones, and the loops they are checked against
        fns = {n: f for n, f in fns.items() if n in only or any(fns[o][1] == n for o in only)}
    reference, flops, diffs = {}, {}, {}
    for name, (fn, ref) in fns.items():  # one untimed call each: gradient check and FLOP count
        with FlopCounterMode(display=False) as counter:
            grads = fn()
        if name == ref:  # the loops come first: they define the reference and the useful work
            reference[ref], flops[ref] = grads, counter.get_total_flops()
        flops[name] = flops[ref]
        diffs[name] = max((g - r).abs().max().item() for g, r in zip(grads, reference[ref]))
    timed = {name: fn for name, (fn, _) in fns.items() if not only or name in only}
    timings = compare_timings(timed, rounds=rounds, warmup=warmup)
    return {"setting": dict(ways=ways, shots=shots, queries=queries, meta_batch=meta_batch,
                            inner_steps=steps, arch=arch),
            "contenders": {name: {"median_s": t.median, "q1_s": t.iqr[0], "q3_s": t.iqr[1],
                                  "samples_s": t.samples, "gflop": flops[name] / 1e9,
                                  "gflops": flops[name] / 1e9 / t.median,
                                  "max_abs_diff_vs_loop": diffs[name]}
                           for name, t in timings.items()}}


def table(name: str, result: dict, mm_rate: float) -> str:
    s = result["setting"]
    rows = [f"{name}: {s['ways']}-way {s['shots']}-shot, {s['queries']} queries/class, meta-batch "
            f"{s['meta_batch']}, {s['inner_steps']} inner step(s), {s['arch']} net",
            f"  {'contender':<24s} {'median s':>9s} {'IQR s':>17s} {'speedup':>8s} "
            f"{'GFLOP/s':>8s} {'% of mm':>8s} {'max |Δ grad|':>13s}"]
    contenders = result["contenders"]
    base = (contenders.get(HIGHER) or contenders.get("loop, second order")
            or next(iter(contenders.values())))["median_s"]  # with --contenders, maybe neither
    for cname, c in contenders.items():
        rows.append(f"  {cname:<24s} {c['median_s']:9.3f} [{c['q1_s']:7.3f}, {c['q3_s']:7.3f}] "
                    f"{base / c['median_s']:7.2f}x {c['gflops']:8.1f} {100 * c['gflops'] / mm_rate:7.1f}% "
                    f"{c['max_abs_diff_vs_loop']:13.2e}")
    return "\n".join(rows)


def fastest_second_order(result: dict) -> tuple[str, float]:
    ours = {n: c["median_s"] for n, c in result["contenders"].items()
            if "first order" not in n and n != HIGHER}
    best = min(ours, key=ours.get)
    return best, ours[best]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m maml_helpers.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--compare", action="store_true",
                   help="every setting of the paper, with `higher` beside our engines")
    p.add_argument("--settings", nargs="+", choices=COMPARE_SETTINGS,
                   help="with --compare: only these settings (default: all)")
    # One setting, without --compare (None: not given, so that --compare can refuse them)
    p.add_argument("--ways", type=ways_int, help="default: 5")
    p.add_argument("--shots", type=positive_int, help="default: 1")
    p.add_argument("--queries", type=positive_int, help="default: 1")
    p.add_argument("--meta-batch", type=positive_int, help="default: the paper's for --ways")
    p.add_argument("--inner-steps", type=positive_int, help="default: the paper's for --ways")
    p.add_argument("--arch", choices=ARCHITECTURES, help="default: strided")
    p.add_argument("--contenders", nargs="+", choices=CONTENDERS, metavar="NAME",
                   help="time only these, quoted as in the table: " + "; ".join(f"'{c}'" for c in CONTENDERS))
    p.add_argument("--iterations", type=timing_rounds, default=5, help="timed rounds per contender")
    p.add_argument("--warmup", type=nonnegative_int, default=1)
    add_machine_flags(p, device=False, json="write the results to this file")
    args = p.parse_args(argv)
    one = [flag(k) for k in ("ways", "shots", "queries", "meta_batch", "inner_steps", "arch")
           if getattr(args, k) is not None]
    if args.contenders and HIGHER in args.contenders and not args.compare:
        p.error(f"'{HIGHER}' is timed with --compare only")
    if args.compare and one:
        p.error(f"--compare times the paper's settings (choose among them with --settings); "
                f"{' '.join(one)} set up one setting without --compare. Drop one or the other.")
    if args.settings and not args.compare:
        p.error("--settings chooses among the settings of --compare: add --compare")
    kept = use_machine_flags(args)
    rounds = args.iterations
    if args.compare:
        settings = {n: COMPARE_SETTINGS[n] for n in (args.settings or COMPARE_SETTINGS)}
    else:
        ways = args.ways or 5
        d = paper_defaults(ways)
        settings = {"custom": (ways, args.shots or 1, args.queries or 1, args.meta_batch or d["meta_batch"],
                               args.inner_steps or d["train_steps"], args.arch or "strided")}
    mm_rate = matmul_gflops()
    malloc = "freed memory kept for reuse" if kept else "allocator's default"
    print(f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, {malloc}; "
          f"torch.mm 2048x2048 float32: {mm_rate:.1f} GFLOP/s")
    results = {}
    for name, setting in settings.items():
        results[name] = bench_setting(*setting, rounds=rounds, warmup=args.warmup, with_higher=args.compare,
                                      only=args.contenders)
        print(table(name, results[name], mm_rate), flush=True)
    record = {"machine": platform.machine(), "processor": platform.processor(),
              "torch": str(torch.__version__), "threads": torch.get_num_threads(), "malloc_keep": kept,
              "matmul_gflops": mm_rate, "rounds": rounds, "settings": results}
    speedups = {}  # per setting: higher's median over our fastest second order
    if args.compare and not args.contenders:
        for name, result in results.items():
            best, seconds = fastest_second_order(result)
            speedups[name] = {"value": result["contenders"][HIGHER]["median_s"] / seconds, "ours": best}
        record["speedup_vs_higher_by_setting"] = speedups
        if HEADLINE in speedups:
            record["speedup_vs_higher"] = {**speedups[HEADLINE], "setting": HEADLINE}
    if args.json:
        atomic_write(args.json, lambda f: f.write(json.dumps(record, indent=2).encode()))
    for name, speedup in speedups.items():  # the summary; the paper's headline setting last
        if name != HEADLINE:
            print(f"speedup_vs_higher[{name}]: {speedup['value']:.2f} ({speedup['ours']})")
    if HEADLINE in speedups:
        print(f"speedup_vs_higher: {speedups[HEADLINE]['value']:.2f}")
    return 0


if __name__ == "__main__":
    run_cli(main)
