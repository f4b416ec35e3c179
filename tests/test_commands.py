"""The commands: train (with bit-for-bit resume), evaluate, bench, and their bad-input errors."""
from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys

import pytest
import torch

from maml_helpers import train as train_cmd
from maml_helpers.checkpoint import load_checkpoint, save_checkpoint
from maml_helpers.errors import CheckpointError, MamlError, TaskShapeError, TrainingDiverged
from maml_helpers.evaluate import main as evaluate_main
from maml_helpers.evaluation import mean_and_ci95

SMALL = ["--meta-batch", "2", "--val-every", "2", "--val-tasks", "4", "--hidden", "8", "--no-progress",
         "--no-download"]


def run(module: str, *args: str, env=None):
    """A command as a user runs it: a separate process, its exit status and output."""
    return subprocess.run([sys.executable, "-m", f"maml_helpers.{module}", *args], capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=300)


@pytest.fixture(scope="module")
def trained(omniglot, omniglot_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "a"
    assert train_cmd.main(["--iterations", "4", "--out", str(out), "--data", str(omniglot_dir), *SMALL]) == 0
    return out


def test_train_writes_checkpoint_model_and_curve(trained):
    assert {p.name for p in trained.iterdir()} == {"checkpoint.pt", "model.pt", "curve.csv", "curve.png"}
    state = load_checkpoint(trained / "checkpoint.pt")
    assert state["iteration"] == 4 and state["config"]["ways"] == 5 and state["config"]["inner_lr"] == 0.4
    rows = (trained / "curve.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,") and len(rows) == 5


def test_best_model_is_chosen_on_right_answers_not_on_float_noise(trained):
    # A validation that ties the best in right answers (14,962 of 15,000) but whose float mean
    # came out 6e-10 higher, as one did in a long run: the earlier weights stay the model.
    best = {"val_acc": 14962 / 15000 + 6e-10, "iteration": 18000}  # saved without its count
    assert not train_cmd.is_new_best(14962, 15000, best)
    assert train_cmd.is_new_best(14963, 15000, best)
    assert not train_cmd.is_new_best(14962, 15000, {**best, "val_right": 14962})
    state = load_checkpoint(trained / "checkpoint.pt")
    best, validations = state["best"], [r for r in state["curve"] if r["val_acc"] is not None]
    assert best["val_acc"] == best["val_right"] / (4 * 5 * 15)  # 4 tasks, 5 ways, 15 queries per class
    top = max(r["val_acc"] for r in validations)
    assert best["iteration"] == next(r["iteration"] for r in validations if r["val_acc"] == top)  # ties: the first


def test_resume_continues_bit_for_bit(trained, omniglot_dir, tmp_path):
    out = tmp_path / "b"
    args = ["--out", str(out), "--data", str(omniglot_dir), *SMALL]
    train_cmd.main(["--iterations", "2", *args])
    train_cmd.main(["--iterations", "4", "--resume", *args])
    straight, resumed = load_checkpoint(trained / "checkpoint.pt"), load_checkpoint(out / "checkpoint.pt")
    for name, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][name]), name
    assert [r["train_loss"] for r in straight["curve"]] == [r["train_loss"] for r in resumed["curve"]]
    with pytest.raises(MamlError, match="already holds a run"):
        train_cmd.main(["--iterations", "4", *args])
    with pytest.raises(MamlError, match="setting differs"):
        train_cmd.main(["--iterations", "6", "--resume", "--shots", "5", *args])


def test_meta_lr_schedule_is_constant_then_cosine():
    config = {"meta_lr": 1e-3, "final_meta_lr": 1e-4, "decay_start": None}
    assert {train_cmd.meta_lr_at(it, config, 100) for it in (0, 50, 99)} == {1e-3}  # the paper: constant
    config["decay_start"] = 50
    lrs = [train_cmd.meta_lr_at(it, config, 100) for it in range(100)]
    assert lrs[:51] == [1e-3] * 51 and all(a > b for a, b in zip(lrs[50:], lrs[51:]))
    assert lrs[75] == pytest.approx(5.5e-4) and train_cmd.meta_lr_at(100, config, 100) == pytest.approx(1e-4)


def test_resume_may_add_a_schedule_and_records_it(trained, omniglot_dir, tmp_path):
    out = tmp_path / "d"
    args = ["--out", str(out), "--data", str(omniglot_dir), *SMALL]
    train_cmd.main(["--iterations", "2", *args])
    # the engine is not part of the run: the same gradients either way, so it may change too
    train_cmd.main(["--iterations", "6", "--resume", "--decay-start", "3", "--final-meta-lr", "1e-5",
                    "--engine", "loop", *args])
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["config"]["decay_start"] == 3 and state["config"]["final_meta_lr"] == 1e-5
    lrs = [r["meta_lr"] for r in state["curve"]]
    assert lrs[:4] == [1e-3] * 4 and lrs[3] > lrs[4] > lrs[5] > 1e-5
    header = (out / "curve.csv").read_text().splitlines()[0]
    assert header.endswith(",meta_lr")
    with pytest.raises(MamlError, match="--decay-start must lie"):
        train_cmd.main(["--iterations", "6", "--decay-start", "6", "--out", str(tmp_path / "e"), *SMALL])


def test_durations_and_budget_arithmetic():
    assert [train_cmd.parse_duration(t) for t in ("600", "90s", "45m", "2h", "1.5h")] == [600, 90, 2700, 7200, 5400]
    for bad in ("", "soon", "-5m", "0"):
        with pytest.raises(Exception, match="duration"):
            train_cmd.parse_duration(bad)
    # 40 done, 0.1 s each, 6 s left: 90% of 6 s is 54 more; never past the cap
    assert train_cmd.budget_iterations(40, 0.1, 6.0, cap=1000) == 94
    assert train_cmd.budget_iterations(40, 0.1, 6.0, cap=60) == 60
    assert train_cmd.budget_iterations(40, 0.1, -1.0, cap=1000) == 40
    assert train_cmd.resolve_decay_start(0.5, 94) == 47 and train_cmd.resolve_decay_start(20, 94) == 20
    assert train_cmd.resolve_decay_start(0.1, 94, earliest=40) == 40 and train_cmd.resolve_decay_start(None, 94) is None


class FakeClock:
    """time.time() for train: it moves only when a meta-step runs, by ``step`` seconds."""

    def __init__(self, step):
        self.now, self.step = 1000.0, step

    def time(self):
        return self.now


def budgeted_run(monkeypatch, clock, argv):
    real_step = train_cmd.meta_step

    def timed_step(*a, **k):
        clock.now += clock.step(clock) if callable(clock.step) else clock.step
        return real_step(*a, **k)

    monkeypatch.setattr(train_cmd, "meta_step", timed_step)
    monkeypatch.setattr(train_cmd, "time", clock)
    return train_cmd.main(argv)


def test_time_budget_sets_the_iterations_and_the_decay(omniglot_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "b"
    argv = ["--iterations", "100000", "--time-budget", "10", "--decay-start", "0.5", "--out", str(out),
            "--data", str(omniglot_dir), *SMALL, "--val-every", "25"]
    assert budgeted_run(monkeypatch, FakeClock(0.1), argv) == 0
    # 40 steps (10 warm-up + 30 timed at 0.1 s) leave 6 s: 90% of it is 54 more steps
    state = load_checkpoint(out / "checkpoint.pt")
    planned = state["planned_iterations"]
    assert planned in (93, 94) and state["iteration"] == planned == len(state["curve"])
    assert state["config"]["decay_start"] == round(planned / 2)
    lrs = [r["meta_lr"] for r in state["curve"]]
    assert lrs[:46] == [1e-3] * 46 and lrs[-1] == pytest.approx(1e-4, rel=0.02)
    assert f"0.1000 s per meta-step over 30 → {planned} iterations in all" in capsys.readouterr().out


def test_time_budget_cuts_a_run_that_slows_down_and_it_resumes(omniglot_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "c"
    args = ["--out", str(out), "--data", str(omniglot_dir), *SMALL, "--val-every", "25"]
    # 0.1 s per step while timed, then 3 times slower: the budget runs out before the plan ends
    clock = FakeClock(lambda c: 0.1 if c.now < 1004.05 else 0.3)
    assert budgeted_run(monkeypatch, clock, ["--iterations", "100000", "--time-budget", "10", *args]) == 0
    state = load_checkpoint(out / "checkpoint.pt")
    planned, done = state["planned_iterations"], state["iteration"]
    assert done < planned and done in (60, 61)  # 6 s left at 0.3 s per step: cut at the first step past it
    assert f"stopped after iteration {done} of {planned} (the time budget ran out)" in capsys.readouterr().out
    monkeypatch.setattr(train_cmd, "time", __import__("time"))
    assert train_cmd.main(["--iterations", str(planned), "--resume", *args]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["iteration"] == planned


def test_init_starts_from_another_runs_model(trained, omniglot_dir, tmp_path, monkeypatch):
    out = tmp_path / "i"
    real_step, seen = train_cmd.meta_step, []

    def first_weights(model, *a, **k):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return real_step(model, *a, **k)

    monkeypatch.setattr(train_cmd, "meta_step", first_weights)
    assert train_cmd.main(["--iterations", "1", "--shots", "2", "--init", str(trained / "model.pt"),
                           "--out", str(out), "--data", str(omniglot_dir), *SMALL]) == 0
    start = load_checkpoint(trained / "model.pt")["model"]
    assert all(torch.equal(v, seen[0][k]) for k, v in start.items())
    assert load_checkpoint(out / "checkpoint.pt")["config"]["init"] == str(trained / "model.pt")
    with pytest.raises(MamlError, match=r"another shape: \{'hidden': \(8, 16\)\}"):
        train_cmd.main(["--iterations", "1", "--init", str(trained / "model.pt"), "--out", str(tmp_path / "j"),
                        "--data", str(omniglot_dir), *SMALL, "--hidden", "16"])


def test_ctrl_c_checkpoints_and_resume_loses_nothing(trained, omniglot_dir, tmp_path, monkeypatch):
    out = tmp_path / "s"
    args = ["--out", str(out), "--data", str(omniglot_dir), *SMALL]
    real_step, calls = train_cmd.meta_step, []

    def step_then_ctrl_c(*a, **k):
        result = real_step(*a, **k)
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C during iteration 2
        return result

    monkeypatch.setattr(train_cmd, "meta_step", step_then_ctrl_c)
    assert train_cmd.main(["--iterations", "4", *args]) == 130
    assert load_checkpoint(out / "checkpoint.pt")["iteration"] == 2
    monkeypatch.setattr(train_cmd, "meta_step", real_step)
    assert train_cmd.main(["--iterations", "4", "--resume", *args]) == 0
    straight, resumed = load_checkpoint(trained / "checkpoint.pt"), load_checkpoint(out / "checkpoint.pt")
    assert all(torch.equal(v, resumed["model"][k]) for k, v in straight["model"].items())


def test_divergence_stops_and_keeps_the_last_good_checkpoint(omniglot_dir, tmp_path, monkeypatch):
    out = tmp_path / "c"
    args = ["--out", str(out), "--data", str(omniglot_dir), *SMALL]
    train_cmd.main(["--iterations", "2", *args])
    before = (out / "checkpoint.pt").read_bytes()
    real_step = train_cmd.meta_step

    def step_that_turns_nan(model, optimizer, tasks, *a, **k):
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))  # a NaN in theta makes a NaN meta-loss
        return real_step(model, optimizer, tasks, *a, **k)

    monkeypatch.setattr(train_cmd, "meta_step", step_that_turns_nan)
    with pytest.raises(TrainingDiverged, match=r"diverged at iteration 2: .*nan.*iteration 2\) is kept"):
        train_cmd.main(["--iterations", "4", "--resume", "--checkpoint-minutes", "0", *args])
    assert (out / "checkpoint.pt").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "curve.csv", "curve.png", "model.pt"]


def test_evaluate_prints_the_accuracy_line(trained, omniglot_dir):
    result = run("evaluate", str(trained / "model.pt"), "--tasks", "10", "--data", str(omniglot_dir))
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"accuracy: \d+\.\d\d ± \d+\.\d\d % \(10 tasks\)", last), last
    again = run("evaluate", str(trained / "model.pt"), "--tasks", "10", "--data", str(omniglot_dir))
    assert again.stdout == result.stdout  # seeded tasks: the same number every time


def test_evaluate_json_records_every_task(trained, omniglot_dir, tmp_path):
    out = tmp_path / "evaluation.json"
    result = run("evaluate", str(trained / "model.pt"), "--tasks", "10", "--data", str(omniglot_dir),
                 "--json", str(out))
    record = json.loads(out.read_text())
    assert {k: record[k] for k in ("tasks", "seed", "ways", "eval_queries", "queries_per_task")} == {
        "tasks": 10, "seed": 0, "ways": 5, "eval_queries": 15, "queries_per_task": 75}
    correct = record["correct_per_task"]
    assert len(correct) == 10 and all(isinstance(c, int) and 0 <= c <= 75 for c in correct)
    acc, ci = mean_and_ci95(torch.tensor(correct, dtype=torch.float64) / 75)
    assert (record["accuracy"], record["ci95"]) == (round(100 * acc, 2), round(100 * ci, 2))
    assert result.stdout.strip().endswith(f"accuracy: {100 * acc:.2f} ± {100 * ci:.2f} % (10 tasks)")


@pytest.mark.parametrize("args, message", [
    (["--ways", "5000"], r"Cannot draw a 5000-way task: the train split \(--validation .*\) has only 4400 classes"),
    (["--ways", "500"], "Cannot draw a 500-way task: the val split .* has only 400 classes"),
    (["--shots", "10", "--queries", "11"], "--shots 10 and --queries 11 ask for 21 drawings per class"),
])
def test_train_refuses_impossible_tasks(omniglot, omniglot_dir, tmp_path, args, message):
    with pytest.raises(MamlError, match=message):
        train_cmd.main([*args, "--iterations", "1", "--out", str(tmp_path / "d"), "--data", str(omniglot_dir),
                        *SMALL])
    assert not (tmp_path / "d").exists()


def test_evaluate_query_batches(trained, omniglot_dir):
    base = ["evaluate", str(trained / "model.pt"), "--tasks", "10", "--data", str(omniglot_dir)]
    as_trained, at_once = run(*base), run(*base, "--query-batch", "0")
    assert "15 queries per class in batches of 1 per class" in as_trained.stdout  # the run trained with 1
    assert "15 queries per class in batches of 15 per class" in at_once.stdout
    bad = run(*base, "--query-batch", "4")
    assert bad.returncode == 2 and "do not split into batches of 4 per class" in bad.stderr


def test_commands_fail_cleanly_without_a_traceback(tmp_path):
    missing = run("train", "--iterations", "1", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "e"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "error: Omniglot not found" in missing.stderr and "OMNIGLOT_DIR" in missing.stderr
    assert not (tmp_path / "e").exists()

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    torch.save({"config": {"ways": 5}, "model": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pt")
    for name, message in [("junk.pt", "not a PyTorch checkpoint file"),
                          ("foreign.pt", "not a maml_helpers checkpoint"),
                          ("pickled.pt", "unsafe|arbitrary code"),
                          ("absent.pt", "No checkpoint at")]:
        result = run("evaluate", str(tmp_path / name))
        assert result.returncode == 2 and "Traceback" not in result.stderr, (name, result.stderr)
        assert re.search(message, result.stderr), (name, result.stderr)


def test_damaged_checkpoint_contents(tmp_path):
    save_checkpoint(tmp_path / "bad.pt", {"config": {"ways": 5, "hidden": 64, "arch": "strided"},
                                          "model": {"head.weight": torch.zeros(2)}})
    with pytest.raises(CheckpointError, match="damaged"):
        evaluate_main([str(tmp_path / "bad.pt")])
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "bad.pt").read_bytes()[:300])
    with pytest.raises(CheckpointError, match="corrupt|not a PyTorch"):
        load_checkpoint(tmp_path / "trunc.pt")


def test_curve_is_stored_by_column_and_read_back_as_rows(tmp_path):
    rows = [{"iteration": i, "train_loss": 1 / i, "val_acc": None if i % 2 else 0.5} for i in range(1, 5)]
    save_checkpoint(tmp_path / "c.pt", {"curve": rows})
    stored = torch.load(tmp_path / "c.pt", weights_only=True)["curve"]
    assert stored == {"columns": {"iteration": [1, 2, 3, 4], "train_loss": [1, 0.5, 1 / 3, 0.25],
                                  "val_acc": [None, 0.5, None, 0.5]}}
    assert load_checkpoint(tmp_path / "c.pt")["curve"] == rows
    older = [{"iteration": 1}, {"iteration": 2, "meta_lr": 1e-3}]  # a field added mid-run
    save_checkpoint(tmp_path / "m.pt", {"curve": older})
    assert load_checkpoint(tmp_path / "m.pt")["curve"] == [{"iteration": 1, "meta_lr": None}, older[1]]
    torch.save({"format": "maml_helpers.checkpoint/1", "curve": rows}, tmp_path / "old.pt")  # rows, as before
    assert load_checkpoint(tmp_path / "old.pt")["curve"] == rows
    torch.save({"format": "maml_helpers.checkpoint/1", "curve": {"rows": 3}}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="learning curve cannot be read"):
        load_checkpoint(tmp_path / "bad.pt")


def test_atomic_save_leaves_old_file_on_failure(tmp_path):
    save_checkpoint(tmp_path / "x.pt", {"a": 1})
    with pytest.raises(Exception):
        save_checkpoint(tmp_path / "x.pt", {"a": lambda: 0})  # unpicklable: fails mid-write
    assert load_checkpoint(tmp_path / "x.pt")["a"] == 1 and [p.name for p in tmp_path.iterdir()] == ["x.pt"]
    umask = os.umask(0); os.umask(umask)
    assert (tmp_path / "x.pt").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_bench_writes_json(tmp_path):
    result = run("bench", "--meta-batch", "2", "--iterations", "2", "--json", str(tmp_path / "b.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "b.json").read_text())
    [setting] = record["settings"].values()
    contenders = setting["contenders"]
    assert set(contenders) == {"loop, second order", "loop, first order", "batched, second order",
                               "batched, first order", "batched, torch formulas"}
    assert all(c["median_s"] > 0 and c["gflops"] > 0 for c in contenders.values())
    assert all(c["max_abs_diff_vs_loop"] < 1e-4 for c in contenders.values())  # same gradient
    assert record["matmul_gflops"] > 0 and "speedup_vs_higher" not in result.stdout
    assert record["malloc_keep"] is (platform.libc_ver()[0] == "glibc")
    assert "freed memory kept for reuse" in result.stdout.splitlines()[0]


def test_bench_times_only_the_contenders_asked_for(tmp_path):
    result = run("bench", "--meta-batch", "2", "--iterations", "2", "--contenders", "batched, first order",
                 "--malloc", "default", "--json", str(tmp_path / "b.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "b.json").read_text())
    [setting] = record["settings"].values()
    [(name, timed)] = setting["contenders"].items()
    assert name == "batched, first order" and timed["max_abs_diff_vs_loop"] < 1e-4  # still checked
    assert record["malloc_keep"] is False and "allocator's default" in result.stdout
    refused = run("bench", "--contenders", "higher, second order")
    assert refused.returncode == 2 and "--compare only" in refused.stderr


def test_keep_freed_memory_is_taken_by_glibc():
    code = "from maml_helpers.allocator import keep_freed_memory; print(keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def test_bench_compare_ends_with_the_speedup_over_higher(tmp_path):
    pytest.importorskip("higher")
    result = run("bench", "--compare", "--settings", "20w1s-1q-5steps-strided", "5w1s-1q-strided",
                 "--iterations", "2", "--warmup", "0", "--json", str(tmp_path / "c.json"))
    assert result.returncode == 0, result.stderr
    *_, twenty_way, last = result.stdout.strip().splitlines()
    assert re.fullmatch(r"speedup_vs_higher\[20w1s-1q-5steps-strided\]: \d+\.\d\d \(.+, second order\)", twenty_way)
    assert re.fullmatch(r"speedup_vs_higher: \d+\.\d\d", last), last
    record = json.loads((tmp_path / "c.json").read_text())
    contenders = record["settings"]["5w1s-1q-strided"]["contenders"]
    higher = contenders["higher, second order"]
    assert higher["max_abs_diff_vs_loop"] < 1e-5  # higher computes the same meta-gradient
    speedup = record["speedup_vs_higher"]
    assert speedup["value"] == pytest.approx(higher["median_s"] / contenders[speedup["ours"]]["median_s"])
    assert last == f"speedup_vs_higher: {speedup['value']:.2f}"
    by_setting = record["speedup_vs_higher_by_setting"]
    assert twenty_way.split(": ")[1].startswith(f"{by_setting['20w1s-1q-5steps-strided']['value']:.2f} (")


def test_task_shape_error_is_a_value_error():
    assert issubclass(TaskShapeError, ValueError)  # callers that catch ValueError still work


def test_train_parts_work_alone(tmp_path, monkeypatch):
    """The named parts of train(): the engine choice, the time budget and the writer."""
    from maml_helpers.batched import batched_meta_gradient
    from maml_helpers.maml import meta_gradient

    assert train_cmd.engine_for("loop", 1) is meta_gradient
    assert train_cmd.engine_for("batched", 1) is batched_meta_gradient
    assert train_cmd.engine_for("batched", 2) is not batched_meta_gradient  # averaged over processes

    args = train_cmd.build_parser().parse_args(["--iterations", "1000", "--time-budget", "100", "--hidden", "8"])
    config = train_cmd.run_config(args)
    clock = FakeClock(0)
    monkeypatch.setattr(train_cmd, "time", clock)
    budget = train_cmd.TimeBudget(args, launched=clock.now, start=0, decay_given=None)
    plans = []
    for it in range(1, 41):
        clock.now += 0.5  # half a second per meta-step
        plans.append(budget.after_step(it, config, "cpu"))
    assert plans[:-1] == [None] * 39  # 10 warm-up steps, then 30 timed ones
    total, why = plans[-1]
    assert total == 40 + int(0.9 * 80 / 0.5) == 184 and "0.5000 s per meta-step over 30 → 184" in why
    assert not budget.out_of_time()
    clock.now += 81
    assert budget.out_of_time()

    model = train_cmd.network(config)
    optimizer = torch.optim.Adam(model.parameters())
    progress = {"iteration": 3, "elapsed_s": 1.5, "curve": [], "best": {"val_acc": 0.5, "iteration": 2}}
    other = train_cmd.RunWriter(tmp_path, rank=1, config=config, fingerprint="f", device=torch.device("cpu"))
    other.checkpoint(model, optimizer, progress, planned=10)
    other.model(model, progress["best"])
    assert list(tmp_path.iterdir()) == []  # only process 0 writes
    writer = train_cmd.RunWriter(tmp_path, rank=0, config=config, fingerprint="f", device=torch.device("cpu"))
    writer.checkpoint(model, optimizer, progress, planned=10)
    writer.model(model, progress["best"])
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["iteration"] == 3 and state["planned_iterations"] == 10 and state["best"]["iteration"] == 2
    assert load_checkpoint(tmp_path / "model.pt")["best"]["val_acc"] == 0.5
    assert (tmp_path / "curve.csv").read_text().startswith("iteration,")
