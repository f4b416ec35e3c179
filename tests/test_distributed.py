"""Data-parallel meta-training over 2 processes equals one process (127.0.0.1, gloo).

1. float64, the library's meta_step: after 3 Adam meta-steps on the same tasks, the
   2-process weights equal the single-process weights (loop and batched engines).
2. The real command: `torchrun --nproc_per_node 2 -m maml_helpers.train` on Omniglot gives
   the same weights as `python -m maml_helpers.train` (float32: up to summation order).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from maml_helpers.batched import batched_meta_gradient
from maml_helpers.checkpoint import load_checkpoint
from maml_helpers.distributed import _all_reduce, any_process, averaged, min_across_processes, shard
from maml_helpers.errors import MamlError
from maml_helpers.maml import meta_gradient, meta_step
from test_batched import float64_model
from test_maml import small_tasks
from support import free_port

STEPS, BATCH = 3, 4


def before_batchnorm(name: str) -> bool:
    """A strided ConvNet's conv biases (features.0/3/6/9.bias): BatchNorm subtracts them again."""
    return name.endswith("bias") and name.startswith("features.") and int(name.split(".")[1]) % 3 == 0


def train_float64(rank: int, world: int, batched: bool):
    model = float64_model("strided", ways=3, hidden=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(STEPS):
        tasks = small_tasks(batch=BATCH, size=16, seed=step)  # every process draws the same tasks
        engine = averaged(batched_meta_gradient if batched else meta_gradient)
        meta_step(model, opt, shard(tasks, rank, world), 0.4, 2, engine=engine)
    return model


def worker(rank: int, world: int, port: int, batched: bool, out: str):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        # what train agrees on: the stop flag (any process) and a time budget's iterations (the least)
        assert any_process(rank == 1) and not any_process(False)
        assert min_across_processes(100 + rank) == 100
        model = train_float64(rank, world, batched)
        torch.save(model.state_dict(), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def release_worker(rank: int, world: int, port: int, calls: int):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        for i in range(calls):
            t = torch.full((1000,), float(rank))
            _all_reduce(t)
            assert t[0].item() == 1.0  # 0 + 1
            # gloo's thread has let go: dropping `t` now needs no other thread to take the GIL
            assert t._use_count() == 1, f"call {i}: gloo still holds the tensor"
    finally:
        dist.destroy_process_group()


def test_all_reduce_returns_only_after_gloo_lets_go_of_the_tensor():
    """The cause of rare aborts at exit (see distributed._all_reduce). Without the wait, about
    one plain dist.all_reduce in five returns while gloo still holds the tensor, so 100 calls
    would all pass by chance with probability about 1e-10."""
    mp.spawn(release_worker, args=(2, free_port(), 100), nprocs=2, join=True)


@pytest.mark.parametrize("batched", [False, True])
def test_two_processes_take_the_single_process_meta_steps(tmp_path, batched):
    out = str(tmp_path / "weights")
    mp.spawn(worker, args=(2, free_port(), batched, out), nprocs=2, join=True)
    single = train_float64(0, 1, batched).state_dict()
    for rank in range(2):
        weights = torch.load(f"{out}.{rank}", weights_only=True)
        for name, value in single.items():
            # A conv bias just before BatchNorm has a meta-gradient of exactly 0 in theory and
            # ~1e-15 of rounding noise in practice (summed in another order over 2 processes);
            # Adam divides it by sqrt(v) + 1e-8, so those biases may differ by ~lr * 1e-7.
            tol = 1e-8 if before_batchnorm(name) else 1e-12
            torch.testing.assert_close(weights[name], value, rtol=0, atol=tol, msg=name)


def test_uneven_share_is_refused():
    with pytest.raises(MamlError, match="divisible by 3"):
        shard(small_tasks(batch=4), 0, 3)


def test_torchrun_two_processes_train_like_one(omniglot, omniglot_dir, tmp_path):
    args = ["--iterations", "3", "--meta-batch", "4", "--hidden", "16", "--val-every", "3",
            "--val-tasks", "4", "--no-progress", "--no-download", "--data", str(omniglot_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "maml_helpers.train", *args, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
                          "-m", "maml_helpers.train", *args, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("trained 3 iterations") == 1  # process 0 reports, alone
    a, b = (load_checkpoint(tmp_path / d / "checkpoint.pt") for d in ("one", "two"))
    for name, value in a["model"].items():
        # In float32 the pre-BatchNorm biases' zero meta-gradient is ~1e-8 of noise, which
        # Adam normalises into lr-sized steps of either sign; they do not change the function.
        if not before_batchnorm(name):
            torch.testing.assert_close(b["model"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    assert [r["train_loss"] for r in a["curve"]] == pytest.approx([r["train_loss"] for r in b["curve"]], abs=1e-4)
    # one more process than tasks divide into: a clear error from every process, no traceback
    three = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "3",
                            "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
                            "-m", "maml_helpers.train", *args, "--out", str(tmp_path / "three")],
                           capture_output=True, text=True, env=env, timeout=300)
    assert three.returncode != 0 and "divisible by 3" in three.stderr
    assert not (tmp_path / "three" / "checkpoint.pt").exists()
