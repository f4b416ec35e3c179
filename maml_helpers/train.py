"""Meta-train MAML on Omniglot:  python -m maml_helpers.train --ways 5 --shots 1

Writes into --out (default runs/<ways>way<shots>shot-<order>-seed<seed>/):
  checkpoint.pt  full training state (model, Adam, curve), every few minutes, at the end and
                 on Ctrl-C (which finishes the current meta-step first; press twice to abort);
                 --resume continues from it bit for bit (tasks of iteration i come from seed
                 (seed, i), so nothing random needs restoring)
  model.pt       the weights with the best validation accuracy (the most right query answers; a
                 tie keeps the earlier weights), with their setting
  curve.csv / curve.png   the learning curve
All files are written atomically.

Several processes (torchrun, see distributed.py) share each meta-batch; process 0 validates
and writes the files.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import math
import platform
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .batched import batched_meta_gradient
from .checkpoint import load_checkpoint, load_model, nonfinite_tensors, save_checkpoint
from .cli import add_machine_flags, use_machine_flags
from .distributed import any_process, averaged, check_divisible, init_from_env, min_across_processes, shard
from .errors import CheckpointError, MamlError, TrainingDiverged, run_cli
from .evaluation import correct_answers, eval_queries, mean_and_ci95, run_split, task_accuracies
from .files import atomic_write, remove_stale_parts
from .maml import META_LR, MetaGradient, meta_gradient, meta_step, paper_defaults
from .model import ARCHITECTURES
from .omniglot import load_omniglot
from .plotting import plot_learning_curve
from .setting import (OPTIONAL, SPLITS, check, check_setting, finite_nonnegative_float, finite_positive_float,
                      flag, network, nonnegative_int, output_folder, positive_int, seed_int, task_count, ways_int)
from .tasks import TaskSampler


# Settings that define a run; on --resume they come from the checkpoint.
RUN_KEYS = ("ways", "shots", "queries", "meta_batch", "inner_lr", "train_steps", "test_steps",
            "meta_lr", "arch", "hidden", "first_order", "first_order_iterations", "seed",
            "split", "validation", "decay_start", "final_meta_lr", "init")
# The meta-lr schedule may be set or changed on --resume (a plateau is seen only mid-run).
SCHEDULE_KEYS = ("decay_start", "final_meta_lr")
# --time-budget: skip this many iterations (allocator, cuDNN and cache warm-up), then time this many.
BUDGET_WARMUP, BUDGET_PROBE = 10, 30
# The files train writes into --out (their stale temporary parts are removed at start).
OUT_FILES = ("checkpoint.pt", "model.pt", "curve.csv", "curve.png")
CURVE_FIELDS = ("iteration", "elapsed_s", "train_loss", "train_acc", "val_acc", "val_ci95", "meta_lr")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m maml_helpers.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ways", type=ways_int, default=5)
    p.add_argument("--shots", type=positive_int, default=1)
    p.add_argument("--queries", type=positive_int, default=1,
                   help="query drawings per class in training; the paper's code draws as many as --shots "
                        "(default 1: cheaper, noisier steps at 5 shots)")
    p.add_argument("--meta-batch", type=positive_int, help="tasks per meta-step (paper: 32 for 5-way, 16 for 20-way)")
    p.add_argument("--inner-lr", type=finite_positive_float, help="alpha (paper: 0.4 for 5-way, 0.1 for 20-way)")
    p.add_argument("--train-steps", type=positive_int, help="inner steps in training (paper: 1 / 5)")
    p.add_argument("--test-steps", type=nonnegative_int, help="inner steps at validation and test (paper: 3 / 5)")
    p.add_argument("--meta-lr", type=finite_positive_float, default=META_LR, help="Adam learning rate (paper: 1e-3)")
    p.add_argument("--decay-start", type=finite_nonnegative_float,
                   help="from this iteration on (or this fraction of --iterations, e.g. 0.5), the "
                        "meta-lr follows a cosine down to --final-meta-lr at --iterations "
                        "(default: constant, as the paper)")
    p.add_argument("--final-meta-lr", type=finite_positive_float, default=OPTIONAL["final_meta_lr"],
                   help="the meta-lr at --iterations when decaying")
    p.add_argument("--arch", choices=ARCHITECTURES, default="strided")
    p.add_argument("--hidden", type=positive_int, default=64, help="filters per conv layer")
    p.add_argument("--first-order", action="store_true", help="first-order MAML throughout")
    p.add_argument("--first-order-iterations", type=nonnegative_int, default=0,
                   help="warm up with this many cheaper first-order iterations, then second order")
    p.add_argument("--iterations", type=positive_int, default=60000,
                   help="total meta-iterations (the usage lines of the authors' main.py: 60,000 for "
                        "Omniglot; earlier versions said 40,000; with --time-budget: at most this many)")
    p.add_argument("--time-budget", type=parse_duration, metavar="DURATION",
                   help="train for about this long from launch (e.g. 600, 45m, 2h): after timing "
                        f"{BUDGET_PROBE} meta-steps, the measured speed sets --iterations and so "
                        "where the decay ends; the run is cut at the budget in any case (resumable)")
    p.add_argument("--init", type=Path, metavar="MODEL",
                   help="start from another run's model.pt (same --ways, --arch and --hidden) "
                        "instead of random weights, e.g. 5-shot training from a 1-shot model")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--split", choices=SPLITS, default="paper")
    p.add_argument("--validation", type=nonnegative_int, default=100, help="characters held out for validation")
    p.add_argument("--val-every", type=positive_int, default=500)
    p.add_argument("--val-tasks", type=task_count, default=200)
    p.add_argument("--checkpoint-minutes", type=finite_nonnegative_float, default=5.0)
    p.add_argument("--data", help="folder with the Omniglot zips (default: OMNIGLOT_DIR, cache, download)")
    p.add_argument("--no-download", action="store_true")
    p.add_argument("--out", type=output_folder)
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    p.add_argument("--engine", choices=("batched", "loop"), default="batched",
                   help="meta-step: all tasks in one pass (batched.py) or one task at a time; "
                        "the same gradients, so a run may switch on --resume")
    p.add_argument("--no-progress", action="store_true")
    add_machine_flags(p)
    return p


def parse_duration(text: str) -> float:
    """Seconds from '600', '600s', '45m' or '2h'."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (write e.g. 600, 45m or 2h)") from None
    if not seconds > 0 or math.isinf(seconds):  # also refuses 'nan'
        raise argparse.ArgumentTypeError(f"the duration must be positive and finite, got {text!r}")
    return seconds


def budget_iterations(done: int, seconds_per_iteration: float, seconds_left: float, cap: int,
                      margin: float = 0.9) -> int:
    """How many iterations in all fit the time left, keeping 10% for validation and saving."""
    return min(cap, done + max(0, int(margin * seconds_left / seconds_per_iteration)))


def resolve_decay_start(given: float | None, iterations: int, earliest: int = 0) -> int | None:
    """--decay-start as an iteration: a fraction (< 1) of ``iterations``, never before ``earliest``."""
    if given is None:
        return None
    start = round(given * iterations) if given < 1 else int(given)
    return max(start, earliest)


@contextlib.contextmanager
def stop_signals():
    """Ctrl-C or SIGTERM asks the loop to finish its meta-step, checkpoint and exit, so that
    --resume loses nothing; a second Ctrl-C stops at once."""
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # signals need the main thread
        yield requested
        return

    def handler(signum, frame):
        if requested:
            raise KeyboardInterrupt
        requested.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_config(args: argparse.Namespace) -> dict:
    """The run's setting from the flags, checked (``setting.check_setting``)."""
    check("--iterations", args.iterations, positive_int)
    defaults = paper_defaults(check("--ways", args.ways, ways_int))
    config = {k: getattr(args, k) for k in RUN_KEYS if hasattr(args, k)}
    config["init"] = str(args.init) if args.init else None  # plain data: checkpoints load weights_only
    for k in ("meta_batch", "inner_lr", "train_steps", "test_steps"):
        config[k] = getattr(args, k) if getattr(args, k) is not None else defaults[k]
    if config["decay_start"] is not None:
        check("--decay-start", config["decay_start"], finite_nonnegative_float)
        config["decay_start"] = resolve_decay_start(config["decay_start"], args.iterations)
        if config["decay_start"] >= args.iterations and not args.time_budget:
            raise MamlError(f"--decay-start must lie in [0, --iterations), got {config['decay_start']}.")
    return check_setting(config)


def meta_lr_at(it: int, config: dict, iterations: int) -> float:
    """Constant meta-lr, or from ``decay_start`` a cosine down to ``final_meta_lr`` at the end."""
    start, top = config.get("decay_start"), config["meta_lr"]
    if start is None or it < start:
        return top
    progress = min(1.0, (it - start) / max(1, iterations - start))
    return config["final_meta_lr"] + (top - config["final_meta_lr"]) * 0.5 * (1 + math.cos(math.pi * progress))


def default_out(config: dict) -> Path:
    order = "fo" if config["first_order"] else "so"
    return Path("runs") / f"{config['ways']}way{config['shots']}shot-{order}-seed{config['seed']}"


@dataclass
class Run:
    """Where a run starts: its checked setting, its folder, and what it continues from."""
    config: dict
    out: Path
    resumed: tuple[nn.Module, dict] | None = None  # (model, checkpoint) of --resume
    init: nn.Module | None = None  # the weights of --init


def prepare_run(args: argparse.Namespace, argv) -> Run:
    """The run's setting and its --resume / --init checks, before any data is loaded."""
    config = run_config(args)
    out = args.out or default_out(config)
    if args.resume:
        model, state = load_model(out / "checkpoint.pt", training=True)
        explicit = {k: v for k, v in config.items() if any(a.startswith(flag(k)) for a in (argv or sys.argv[1:]))}
        clash = {k: (v, state["config"].get(k)) for k, v in explicit.items()
                 if state["config"].get(k) != v and k not in SCHEDULE_KEYS}
        if clash:
            raise MamlError(f"--resume continues the run in {out}, whose setting differs from the "
                            f"flags given: {clash} (given, saved). Drop those flags or use a new --out.")
        config = check_setting({**state["config"], **{k: config[k] for k in SCHEDULE_KEYS if k in explicit}})
        return Run(config, out, resumed=(model, state))
    if (out / "checkpoint.pt").exists():
        raise MamlError(f"{out} already holds a run. Add --resume to continue it, or choose another --out.")
    if not args.init:
        return Run(config, out)
    init_model, init = load_model(args.init)
    clash = {k: (init["config"].get(k), config[k]) for k in ("ways", "arch", "hidden")
             if init["config"].get(k) != config[k]}
    if clash:
        raise MamlError(f"--init {args.init} holds a model of another shape: {clash} (its, this "
                        "run's). Start from a model with the same --ways, --arch and --hidden.")
    return Run(config, out, init=init_model)


def samplers(config: dict, data_dir, download: bool):
    """The data, and task samplers of the run's training and validation characters."""
    data = load_omniglot(data_dir, download=download)
    split = run_split(data, config)
    train = TaskSampler(data.images, split["train"], config["ways"], config["shots"], config["queries"],
                        split="train")
    val = (TaskSampler(data.images, split["val"], config["ways"], config["shots"],
                       eval_queries(config["shots"]), split="val") if len(split["val"]) else None)
    return data, train, val


def load_optimizer(optimizer: torch.optim.Optimizer, saved: dict, path: Path) -> None:
    """Adam's state from a checkpoint, checked to fit the model's parameters."""
    try:
        optimizer.load_state_dict(saved)
        fits = all(t.shape == p.shape for p, st in optimizer.state.items() for t in st.values()
                   if isinstance(t, torch.Tensor) and t.dim())
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError):
        fits = False
    if not fits:
        raise CheckpointError(f"{path} is damaged: its optimizer state does not fit the model. Resume "
                              "from another checkpoint, or start a new run (another --out).")


def start_state(run: Run, device: torch.device):
    """The model and Adam (random, --init or resumed), and the run's progress so far."""
    torch.manual_seed(run.config["seed"])
    model = network(run.config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=run.config["meta_lr"])
    progress = {"iteration": 0, "elapsed_s": 0.0, "curve": [], "best": {"val_acc": -1.0, "iteration": 0}}
    if run.init is not None:
        model.load_state_dict(run.init.state_dict())
    if run.resumed is not None:
        resumed, state = run.resumed
        model.load_state_dict(resumed.state_dict())
        load_optimizer(optimizer, state["optimizer"], run.out / "checkpoint.pt")
        progress = {k: state[k] for k in progress}
    return model, optimizer, progress


def engine_for(name: str, world: int) -> MetaGradient:
    """The meta-gradient function of --engine, averaged over the processes when there are several."""
    engine = batched_meta_gradient if name == "batched" else meta_gradient
    return averaged(engine) if world > 1 else engine


class TimeBudget:
    """--time-budget: after BUDGET_WARMUP meta-steps, time BUDGET_PROBE more; their speed sets the
    run's total iterations (and so where a meta-lr decay ends). The run stops at the budget anyway."""

    def __init__(self, args: argparse.Namespace, launched: float, start: int, decay_given):
        self.seconds, self.launched, self.cap = args.time_budget, launched, args.iterations
        self.start, self.decay_given, self.decay_asked_now = start, decay_given, args.decay_start is not None
        self.probe_start = None

    def after_step(self, it: int, config: dict, device) -> tuple[int, str] | None:
        """(new total iterations, a line saying why) once the probe ends; else None."""
        if not self.seconds:
            return None
        if it == self.start + BUDGET_WARMUP:
            self.probe_start = time.time()
        if it != self.start + BUDGET_WARMUP + BUDGET_PROBE:
            return None
        per_it = (time.time() - self.probe_start) / BUDGET_PROBE
        total = int(min_across_processes(budget_iterations(
            it, per_it, self.seconds - (time.time() - self.launched), self.cap), device))
        # A decay asked for now starts after the measurement (whose lr was the constant one).
        config["decay_start"] = resolve_decay_start(self.decay_given, total,
                                                    earliest=it if self.decay_asked_now else 0)
        decay = (f"; meta-lr cosine from iteration {config['decay_start']} to {total}"
                 if config["decay_start"] is not None and config["decay_start"] < total else "")
        return total, (f"time budget {self.seconds:.0f} s: {per_it:.4f} s per meta-step over "
                       f"{BUDGET_PROBE} → {total} iterations in all{decay}")

    def out_of_time(self) -> bool:
        return bool(self.seconds) and time.time() - self.launched > self.seconds


class RunWriter:
    """The run's files in its folder, written atomically by process 0 (other processes write nothing)."""

    def __init__(self, out: Path, rank: int, config: dict, fingerprint: str, device: torch.device):
        self.out, self.rank, self.config, self.fingerprint, self.device = out, rank, config, fingerprint, device
        self.title = (f"MAML {config['ways']}-way {config['shots']}-shot "
                      f"({'first' if config['first_order'] else 'second'} order)")
        if not rank:  # what a killed run (kill -9 mid-write) left behind
            remove_stale_parts(out, OUT_FILES)

    def checkpoint(self, model, optimizer, progress: dict, planned: int) -> None:
        """checkpoint.pt (everything --resume needs) and the curve."""
        if self.rank:
            return
        device = self.device
        hardware = " ".join(filter(None, (platform.machine(), platform.processor(), str(device),
                                          device.type == "cuda" and torch.cuda.get_device_name(device))))
        save_checkpoint(self.out / "checkpoint.pt", {
            "config": self.config, **progress, "planned_iterations": planned, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "data_fingerprint": self.fingerprint,
            "hardware": hardware, "torch_version": str(torch.__version__)})
        self.curve(progress["curve"])

    def model(self, model, best: dict) -> None:
        """model.pt: the weights, with their setting and validation result."""
        if not self.rank:
            save_checkpoint(self.out / "model.pt", {"config": self.config, "model": model.state_dict(),
                                                    "best": best, "data_fingerprint": self.fingerprint})

    def curve(self, rows: list[dict]) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=CURVE_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(self.out / "curve.csv", lambda f: f.write(text.getvalue().encode()))
        if rows:
            plot_learning_curve(rows, title=self.title, path=self.out / "curve.png")


def take_meta_step(model, optimizer, tasks, config: dict, it: int, engine: MetaGradient, out: Path):
    """One meta-step; a non-finite loss or update stops the run, keeping the last good checkpoint."""
    first_order = config["first_order"] or it < config["first_order_iterations"]
    try:
        loss, acc = meta_step(model, optimizer, tasks, config["inner_lr"], config["train_steps"],
                              first_order=first_order, engine=engine)
        bad = nonfinite_tensors(model.state_dict())
        if bad:  # a finite gradient can still make an infinite step; never save such weights
            raise FloatingPointError(f"the update made {bad[0]} non-finite")
    except FloatingPointError as err:
        saved = load_checkpoint(out / "checkpoint.pt")["iteration"] if (out / "checkpoint.pt").exists() else None
        kept = (f"the last good checkpoint ({out / 'checkpoint.pt'}, iteration {saved}) is kept"
                if saved is not None else "no checkpoint had been written yet")
        raise TrainingDiverged(f"Training diverged at iteration {it}: {err}. Stopped without saving it, and "
                               f"{kept}. Try a smaller --meta-lr or --inner-lr.") from None
    return loss, acc


def validate(model, sampler: TaskSampler, config: dict, args, device,
             bar: "TrainingBar") -> tuple[int, int, float]:
    """Right query answers on the validation characters (the same tasks every time), out of how
    many, and the 95% half-width of the accuracy."""
    accs = task_accuracies(model, sampler, config["inner_lr"], config["test_steps"], tasks=args.val_tasks,
                           seed=config["seed"] + 1, device=device, query_batch=config["queries"],
                           progress=lambda n: bar.validating(n, args.val_tasks))
    per_task = sampler.ways * sampler.queries
    right = int(correct_answers(accs, per_task).sum())
    return right, len(accs) * per_task, mean_and_ci95(accs)[1]


def is_new_best(right: int, answers: int, best: dict) -> bool:
    """More right answers than the best validation so far. Counts, not float means: two
    validations with as many right answers tie, whatever rounding their means carry. A best
    saved without its count (older checkpoints) gets it back from its mean."""
    return right > best.get("val_right", round(best["val_acc"] * answers))


class TrainingBar:
    """The progress bar: loss, accuracy and the last validation figure; it says when it validates."""

    def __init__(self, args: argparse.Namespace, progress: dict, title: str, quiet: bool):
        from tqdm.auto import tqdm
        self.bar = tqdm(initial=progress["iteration"], total=args.iterations, desc=title, mininterval=2.0,
                        disable=args.no_progress or quiet, file=sys.stderr)
        self.quiet, best = quiet, progress["best"]["val_acc"]
        self.val = f"{100 * best:.1f}" if best >= 0 else "-"

    def replan(self, total: int, why: str) -> int:
        self.bar.total = total
        if not self.quiet:
            self.bar.write(why)
        return total

    def validating(self, done: int, of: int) -> None:
        self.bar.set_postfix_str(f"validating: {done}/{of} tasks", refresh=True)

    def step(self, loss: float, acc: float, val_acc: float | None) -> None:
        if val_acc is not None:
            self.val = f"{100 * val_acc:.1f}"
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.3f}", acc=f"{100 * acc:.1f}", val=self.val, refresh=False)

    def close(self) -> None:
        self.bar.close()


def main(argv=None) -> int:
    try:
        return train(build_parser().parse_args(argv), argv)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def train(args: argparse.Namespace, argv) -> int:
    launched = time.time()  # --time-budget counts from here: loading the data is part of the run
    use_machine_flags(args)
    run = prepare_run(args, argv)
    config, device = run.config, torch.device(args.device)
    decay_given = args.decay_start if args.decay_start is not None else config["decay_start"]
    if device.type == "cuda":  # full float32, as on a CPU: TF32 would round the small second-order terms
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    rank, world = init_from_env(device)
    check_divisible(config["meta_batch"], world)  # fail fast: before the data is loaded
    model, optimizer, progress = start_state(run, device)  # a bad checkpoint fails fast too
    data, train_sampler, val_sampler = samplers(config, args.data, not args.no_download)
    writer, engine = RunWriter(run.out, rank, config, data.fingerprint, device), engine_for(args.engine, world)
    budget = TimeBudget(args, launched, progress["iteration"], decay_given)
    bar = TrainingBar(args, progress, writer.title, quiet=rank > 0)
    t0, last_save, total, it, elapsed = time.time(), time.time(), args.iterations, progress["iteration"], progress["elapsed_s"]
    with stop_signals() as stop_requested:
        while it < total:
            lr = meta_lr_at(it, config, total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            tasks = shard(train_sampler.sample(config["meta_batch"], seed=[config["seed"], it]), rank, world)
            loss, acc = take_meta_step(model, optimizer, tasks.to(device), config, it, engine, run.out)
            it += 1
            row = {"iteration": it, "elapsed_s": round(elapsed + time.time() - t0, 2), "train_loss": round(loss, 5),
                   "train_acc": round(acc, 5), "val_acc": None, "val_ci95": None, "meta_lr": lr}
            planned = budget.after_step(it, config, device)
            total = bar.replan(*planned) if planned else total
            if val_sampler is not None and rank == 0 and (it % args.val_every == 0 or it == total):
                right, answers, ci = validate(model, val_sampler, config, args, device, bar)
                val_acc = right / answers
                row.update(val_acc=round(val_acc, 5), val_ci95=round(ci, 5))
                if is_new_best(right, answers, progress["best"]):
                    progress["best"] = {"val_acc": val_acc, "val_ci95": ci, "iteration": it, "val_right": right}
                    writer.model(model, progress["best"])
            progress["curve"].append(row)
            progress.update(iteration=it, elapsed_s=elapsed + time.time() - t0)
            bar.step(loss, acc, row["val_acc"])
            out_of_time = budget.out_of_time()
            if any_process(bool(stop_requested) or out_of_time, device) and it < total:
                bar.close()  # all processes stop at the same step
                writer.checkpoint(model, optimizer, progress, total)
                why = (f"signal {stop_requested[0]}" if stop_requested else
                       "the time budget ran out" if out_of_time else "another process was stopped")
                print(f"stopped after iteration {it} of {total} ({why}); the checkpoint in "
                      f"{run.out} is up to date: continue with --resume --iterations {total}")
                return 130 if stop_requested else 0
            if time.time() - last_save > 60 * args.checkpoint_minutes:
                writer.checkpoint(model, optimizer, progress, total)
                last_save = time.time()
    bar.close()
    writer.checkpoint(model, optimizer, progress, total)
    if not (run.out / "model.pt").exists():  # no validation split: the last weights are the model
        writer.model(model, progress["best"])
    if not rank:
        print(f"trained {progress['iteration']} iterations in {progress['elapsed_s']:.0f} s; best validation "
              f"accuracy {100 * max(progress['best']['val_acc'], 0):.2f}% at iteration "
              f"{progress['best']['iteration']}; checkpoints in {run.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
