"""checkpoints/continue_on_gpu.sh launches the runs it says it launches, with or without a run in
progress. It needs a GPU to do real work, so here `python3` is a stub that records each command
line and exits: what is tested is the script's own logic, in a second and on any machine."""
from __future__ import annotations

import os
import shutil
import subprocess

from support import REPO

STUB = """#!/usr/bin/env bash
if [ "$1" = "-c" ]; then echo 24000; exit 0; fi   # planned(): the checkpoint's planned total
echo "$*" >> "$LAUNCHED"
"""


def launch(tmp_path, in_progress=()):
    """The command lines that continue_on_gpu.sh gives train, run in a copy of the layout."""
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(REPO / "checkpoints" / "continue_on_gpu.sh", tmp_path / "checkpoints")
    for name in in_progress:
        (tmp_path / "checkpoints" / "in-progress" / name).mkdir(parents=True)
        (tmp_path / "checkpoints" / "in-progress" / name / "checkpoint.pt").write_bytes(b"")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(STUB)
    (bin_dir / "python3").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", BUDGET="5",
               LAUNCHED=str(tmp_path / "launched.txt"))
    done = subprocess.run(["bash", "checkpoints/continue_on_gpu.sh"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return (tmp_path / "launched.txt").read_text().splitlines()


def outs(lines):
    return sorted(line.split("--out ")[1].split()[0] for line in lines if "--out runs/" in line)


def test_with_no_run_in_progress_it_starts_the_paper_s_20_way_runs(tmp_path):
    lines = launch(tmp_path)
    assert "--out /tmp/gpu-check" in lines[0]          # the short check comes first
    assert outs(lines) == ["runs/20way1shot-so-q1-seed0", "runs/20way5shot-so-q5-seed0"]


def test_a_run_in_progress_is_copied_and_resumed_to_its_planned_total(tmp_path):
    name = "5way5shot-so-q5-24k-seed0"
    lines = launch(tmp_path, [name])
    assert outs(lines) == sorted([f"runs/{name}", "runs/20way1shot-so-q1-seed0", "runs/20way5shot-so-q5-seed0"])
    resumed = next(line for line in lines if f"--out runs/{name}" in line)
    assert "--resume --iterations 24000" in resumed
    assert (tmp_path / "runs" / name / "checkpoint.pt").exists()
