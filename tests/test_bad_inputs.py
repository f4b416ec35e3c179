"""Every bad input gets a clear error: no traceback, the flag or file named, nothing
written; damaged caches are rebuilt; checkpoints are verified before use; no orphans."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_mini_archive
from maml_helpers import bench, evaluate, evaluation, omniglot as og, train
from maml_helpers.checkpoint import load_checkpoint, load_model, save_checkpoint
from maml_helpers.errors import CheckpointError, DataError, MamlError, TrainingDiverged, run_cli
from maml_helpers.files import atomic_write, remove_stale_parts
from support import REPO

MODEL = REPO / "checkpoints" / "5way1shot-so-seed0" / "model.pt"
SMALL = ["--meta-batch", "2", "--val-every", "2", "--val-tasks", "4", "--hidden", "8", "--no-progress",
         "--no-download"]

# (command, arguments, the flags the message must name). Every one must fail before any work.
BAD_FLAGS = [
    *[("train", [flag, value], [flag]) for flag, value in [
        ("--ways", "0"), ("--ways", "five"), ("--shots", "0"), ("--queries", "-1"), ("--meta-batch", "0"),
        ("--inner-lr", "0"), ("--inner-lr", "nan"), ("--train-steps", "0"), ("--test-steps", "-1"),
        ("--meta-lr", "-1"), ("--meta-lr", "nan"), ("--meta-lr", "inf"), ("--final-meta-lr", "0"),
        ("--decay-start", "-1"), ("--hidden", "0"), ("--first-order-iterations", "-1"), ("--iterations", "0"),
        ("--time-budget", "nan"), ("--time-budget", "0"), ("--seed", "-1"), ("--seed", str(2**32)),
        ("--validation", "-1"), ("--validation", "1200"), ("--val-every", "0"), ("--val-tasks", "1"),
        ("--checkpoint-minutes", "-1"), ("--checkpoint-minutes", "inf"), ("--threads", "-1"), ("--threads", "100000"),
        ("--ways", "7000"), ("--hidden", str(10**30)),
        ("--device", "cuda:99"), ("--device", "nonsense"), ("--device", "meta")]],
    ("train", ["--out", "{tmp}/model.pt"], ["--out"]),
    ("train", ["--shots", "10", "--queries", "11"], ["--shots", "--queries"]),
    ("train", ["--decay-start", "0.5", "--final-meta-lr", "0.01"], ["--decay-start", "--final-meta-lr", "--meta-lr"]),
    ("train", ["--decay-start", "10", "--iterations", "10"], ["--decay-start", "--iterations"]),
    ("train", ["--split", "alphabet", "--validation", "964"], ["--split", "--validation"]),
    *[("evaluate", [flag, value], [flag]) for flag, value in [
        ("--tasks", "1"), ("--steps", "-1"), ("--queries", "0"), ("--query-batch", "-1"), ("--seed", "-3"),
        ("--device", "cuda:99"), ("--threads", "0"), ("--json", "{tmp}"), ("--json", "{tmp}/model.pt/a.json")]],
    ("evaluate", ["--queries", "20"], ["--queries", "shots"]),
    ("evaluate", ["--query-batch", "4"], ["--queries", "--query-batch"]),
    *[("bench", [flag, value], [flag]) for flag, value in [
        ("--ways", "0"), ("--ways", str(10**30)), ("--shots", "0"), ("--queries", "0"), ("--meta-batch", "0"), ("--inner-steps", "0"),
        ("--iterations", "1"), ("--warmup", "-1"), ("--threads", "0"), ("--json", "{tmp}")]],
    ("bench", ["--compare", "--ways", "5"], ["--compare", "--ways"]),
    ("bench", ["--settings", "5w1s-1q-strided"], ["--settings", "--compare"]),
]
if not torch.cuda.is_available():
    BAD_FLAGS.append(("train", ["--device", "cuda"], ["--device"]))
COMMANDS = {"train": train.main, "evaluate": evaluate.main, "bench": bench.main}


def snapshot(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture()
def sandbox(tmp_path, monkeypatch):
    """A working folder holding a copy of a trained model; train's default --out would land here."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(MODEL, tmp_path / "model.pt")
    return tmp_path


@pytest.mark.parametrize("command, args, flags", BAD_FLAGS, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_bad_flags_fail_cleanly_before_any_work(sandbox, capsys, command, args, flags):
    args = [a.replace("{tmp}", str(sandbox)) for a in args]
    argv = {"train": ["--no-download", "--data", str(sandbox / "nowhere")],
            "evaluate": [str(sandbox / "model.pt"), "--no-download", "--data", str(sandbox / "nowhere")],
            "bench": []}[command] + args
    before = snapshot(sandbox)
    with pytest.raises(SystemExit) as exit_:
        run_cli(COMMANDS[command], argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert "Omniglot not found" not in err  # refused before the data was even looked for
    for flag in flags:
        assert flag in err, (flag, err)
    assert snapshot(sandbox) == before


def run(module: str, *args: str):
    return subprocess.run([sys.executable, "-m", f"maml_helpers.{module}", *args], capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)


def test_bad_flags_end_to_end_print_no_traceback(tmp_path):
    for module, args, flag in [("train", ["--val-every", "0", "--out", str(tmp_path / "out")], "--val-every"),
                               ("evaluate", [str(MODEL), "--steps", "-1"], "--steps"),
                               ("bench", ["--ways", "0"], "--ways")]:
        result = run(module, *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert flag in result.stderr.splitlines()[-1]
    assert list(tmp_path.iterdir()) == []


def test_library_checks_its_arguments_too():
    for kwargs, flag in [(dict(steps=-1), "--steps"), (dict(tasks=1), "--tasks"), (dict(device="cuda:99"), "--device"),
                         (dict(queries=0), "--queries")]:
        with pytest.raises(MamlError, match=flag):
            evaluation.evaluate_checkpoint(MODEL, data_dir="/nowhere", **kwargs)


# ---------------------------------------------------------------------------- checkpoints

def edited_model(tmp_path: Path, config=None, tensors=None, drop=()) -> Path:
    """A copy of MODEL with some of its setting or tensors changed, written by save_checkpoint."""
    state = load_checkpoint(MODEL)
    state["config"] = {k: v for k, v in {**state["config"], **(config or {})}.items() if k not in drop}
    state["model"] = {**state["model"], **(tensors or {})}
    state.pop("format")
    save_checkpoint(tmp_path / "edited.pt", state)
    return tmp_path / "edited.pt"


def test_a_flipped_byte_inside_a_tensor_is_refused(tmp_path):
    data = bytearray(MODEL.read_bytes())
    head_bias = load_checkpoint(MODEL)["model"]["head.bias"]
    at = data.find(head_bias.numpy().tobytes())
    assert at > 0 and data.count(head_bias.numpy().tobytes()) == 1
    data[at + 2] ^= 0x01
    (tmp_path / "flipped.pt").write_bytes(data)
    # torch.load alone would accept it, with a silently different weight
    loaded = torch.load(tmp_path / "flipped.pt", weights_only=True)["model"]["head.bias"]
    assert not torch.equal(loaded, head_bias)
    with pytest.raises(CheckpointError, match=r"corrupt \(.*fails the zip's CRC check"):
        load_checkpoint(tmp_path / "flipped.pt")
    result = run("evaluate", str(tmp_path / "flipped.pt"))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "CRC" in result.stderr


@pytest.mark.parametrize("edit, message", [
    (dict(drop=["test_steps"]), "records a setting that cannot be used: the setting lacks 'test_steps'"),
    (dict(config={"shots": 50}), "--shots 50 and --queries 1 ask for 51 drawings per class"),
    (dict(config={"ways": -3}), "--ways must be an integer from 1 to 6492 .*, got -3"),
    (dict(config={"arch": "resnet"}), "--arch must be one of 'strided', 'maxpool', got 'resnet'"),
    (dict(config={"inner_lr": float("inf")}), "--inner-lr must be a finite number > 0"),
    (dict(tensors={"head.weight": torch.zeros(7, 64), "head.bias": torch.zeros(7)}),
     r"head.bias has shape \(7,\), the setting needs \(5,\), head.weight has shape \(7, 64\), the setting "
     r"needs \(5, 64\); its tensors would fit ways=7, hidden=64, arch='strided'"),
    (dict(tensors={"head.bias": torch.zeros(5, dtype=torch.float64)}), "head.bias is torch.float64, expected torch.float32"),
    (dict(tensors={"extra": torch.zeros(1)}), "extra is not a tensor of the network"),
])
def test_damaged_checkpoints_are_named_precisely(tmp_path, edit, message):
    path = edited_model(tmp_path, **edit)
    with pytest.raises(CheckpointError, match=message):
        load_model(path)


def test_non_finite_checkpoints_are_neither_written_nor_read(tmp_path):
    state = {"model": {"w": torch.tensor([1.0, float("nan")])}}
    save_checkpoint(tmp_path / "c.pt", {"model": {"w": torch.ones(2)}})
    with pytest.raises(CheckpointError, match="Refusing to write .*model/w hold NaN or inf"):
        save_checkpoint(tmp_path / "c.pt", state)
    assert torch.equal(load_checkpoint(tmp_path / "c.pt")["model"]["w"], torch.ones(2))  # the previous file
    torch.save({"format": "maml_helpers.checkpoint/1", **state}, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="model/w hold NaN or inf"):
        load_checkpoint(tmp_path / "nan.pt")


def test_resume_from_a_model_file_or_a_broken_optimizer_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(MODEL, out / "checkpoint.pt")
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        run_cli(train.main, ["--resume", "--out", str(out), "--data", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "is a model file (like model.pt), not a training state" in err
    assert "lacks 'optimizer'" in err and "Omniglot not found" not in err and snapshot(tmp_path) == before
    state = load_checkpoint(REPO / "checkpoints" / "5way1shot-so-seed0" / "checkpoint.pt")
    state["optimizer"]["state"][0]["exp_avg"] = torch.zeros(3)
    save_checkpoint(out / "checkpoint.pt", {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(CheckpointError, match="optimizer state does not fit the model"):
        train.main(["--resume", "--out", str(out), "--data", str(tmp_path / "nowhere")])


# ---------------------------------------------------------------------------- training

def test_a_non_finite_update_stops_without_saving_and_resume_cleans_orphans(omniglot, omniglot_dir, tmp_path,
                                                                         monkeypatch):
    out = tmp_path / "r"
    args = ["--out", str(out), "--data", str(omniglot_dir), *SMALL, "--checkpoint-minutes", "0"]
    real_step, calls = train.meta_step, []

    def step_then_overflow(model, *a, **k):  # as a huge --meta-lr would: finite loss, infinite weights
        result = real_step(model, *a, **k)
        calls.append(1)
        if len(calls) == 2:
            with torch.no_grad():
                model.head.bias.fill_(float("inf"))
        return result

    monkeypatch.setattr(train, "meta_step", step_then_overflow)
    with pytest.raises(TrainingDiverged, match=r"iteration 1: the update made head.bias non-finite.*iteration 1\) is kept"):
        train.main(["--iterations", "4", *args])
    assert load_checkpoint(out / "checkpoint.pt")["iteration"] == 1  # finite, and loads
    # what kill -9 leaves mid-write, beside what is not ours or still being written
    dead = [out / ".checkpoint.pt.4194999.abcd_123.part", out / ".model.pt.x1y2z3w4.part"]
    kept = [out / f".checkpoint.pt.{os.getpid()}.abcdefgh.part", out / "notes.part", out / ".other.pt.1.abcdefgh.part"]
    for p in dead + kept:
        p.write_bytes(b"partial")
    seen = []

    def step_and_look(*a, **k):
        seen.append([p.name for p in dead + kept if p.exists()])
        return real_step(*a, **k)

    monkeypatch.setattr(train, "meta_step", step_and_look)
    assert train.main(["--iterations", "2", "--resume", *args]) == 0
    assert seen == [[p.name for p in kept]]  # cleaned at the start, before the first step
    assert [p for p in dead if p.exists()] == [] and all(p.exists() for p in kept)


def test_remove_stale_parts_touches_only_dead_parts_of_the_names_given(tmp_path):
    atomic_write(tmp_path / "a.pt", lambda f: f.write(b"x"))
    mine = tmp_path / f".a.pt.{os.getpid()}.abcdefgh.part"
    dead, legacy = tmp_path / ".a.pt.4194999.abcdefgh.part", tmp_path / ".a.pt.abcdefgh.part"
    others = [tmp_path / ".b.pt.4194999.abcdefgh.part", tmp_path / ".a.pt.4194999.short.part", tmp_path / "a.pt.part"]
    for p in [mine, dead, legacy, *others]:
        p.write_bytes(b"")
    assert sorted(remove_stale_parts(tmp_path, ["a.pt"])) == sorted([dead, legacy])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [tmp_path / "a.pt", mine, *others])


# ---------------------------------------------------------------------------- the data cache

@pytest.fixture()
def mini_omniglot(mini_archives, monkeypatch):
    """The mini archives passing as the real data set (layout and fingerprint)."""
    monkeypatch.setattr(og, "LAYOUT", {"background": (2, 6), "evaluation": (2, 6)})
    monkeypatch.setattr(og, "FINGERPRINT", og.preprocess(mini_archives, expected_fingerprint=None).fingerprint)
    return mini_archives


def damage_by(kind: str):
    def truncate(path):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    def flip(path):
        data = bytearray(path.read_bytes())
        data[len(data) // 3] ^= 0xFF  # inside the stored (uncompressed) images
        path.write_bytes(bytes(data))

    def reshape(path):
        np.savez(path, images=np.zeros((3, 20, 28, 28), np.uint8), alphabets=[], characters=[], archive=[])

    return {"truncated": truncate, "bit-flipped": flip, "wrong shape": reshape}[kind]


@pytest.mark.parametrize("kind, reason", [("truncated", "not a zip file"), ("bit-flipped", "Bad CRC-32"),
                                          ("wrong shape", "images of shape")])
def test_a_damaged_cache_is_rebuilt(mini_omniglot, tmp_path, capsys, kind, reason):
    good = og.load_omniglot(mini_omniglot, download=False, cache_dir=tmp_path)
    [cached] = tmp_path.glob("*.npz")
    damage_by(kind)(cached)
    capsys.readouterr()
    again = og.load_omniglot(mini_omniglot, download=False, cache_dir=tmp_path)
    err = capsys.readouterr().err
    assert f"note: the Omniglot cache {cached} cannot be used (" in err and reason in err and "rebuilding" in err
    assert len(err.strip().splitlines()) == 1 and np.array_equal(again.images, good.images)
    assert og.load_omniglot(mini_omniglot, download=False, cache_dir=tmp_path).fingerprint == good.fingerprint
    assert capsys.readouterr().err == ""  # healed: read from the cache, silently


def test_a_killed_cache_write_leaves_no_orphan(mini_omniglot, tmp_path):
    og.load_omniglot(mini_omniglot, download=False, cache_dir=tmp_path)
    orphan = tmp_path / f".omniglot28-{og.FINGERPRINT}.npz.4194999.abcdefgh.part"
    orphan.write_bytes(b"half an array")
    og.load_omniglot(mini_omniglot, download=False, cache_dir=tmp_path)  # read from the cache: no write
    assert not orphan.exists()


def test_a_cache_entry_with_a_wrong_fingerprint_is_rebuilt(mini_omniglot, tmp_path, capsys):
    og.load_omniglot(mini_omniglot, download=False, cache_dir=tmp_path)
    manifest = tmp_path / "archives.json"
    [key] = __import__("json").loads(manifest.read_text())
    (tmp_path / "omniglot28-deadbeef.npz").write_bytes((next(tmp_path.glob("*.npz"))).read_bytes())
    manifest.write_text(f'{{"{key}": "deadbeef"}}')
    data = og.load_omniglot(mini_omniglot, download=False, cache_dir=tmp_path)
    assert "records the fingerprint deadbeef" in capsys.readouterr().err and data.fingerprint == og.FINGERPRINT


def test_an_unwritable_cache_folder_is_reported_and_the_run_goes_on(mini_omniglot, tmp_path, capsys):
    (tmp_path / "file").write_text("a file where the cache folder should be")
    data = og.load_omniglot(mini_omniglot, download=False, cache_dir=tmp_path / "file" / "cache")
    err = capsys.readouterr().err
    assert "note: cannot write the Omniglot cache in" in err and "MAML_CACHE_DIR" in err
    assert len(data.images) == 12 and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_an_undecodable_png_is_named_without_a_python_repr(omniglot_dir, mini_archives, tmp_path, monkeypatch):
    monkeypatch.setattr(og, "LAYOUT", {"background": (2, 6)})
    name = zipfile.ZipFile(mini_archives / "images_background.zip").namelist()[5]
    path = write_mini_archive(omniglot_dir / "images_background.zip", tmp_path / "images_background.zip",
                              drop=name, extra={name: b"not a png"})
    with pytest.raises(DataError) as err:
        og._read_archive(path, "background")
    assert f"cannot decode {name} (not a readable image)" in str(err.value) and "0x" not in str(err.value)


@pytest.mark.parametrize("raised, words", [
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                  "you tried to allocate 400000000000 bytes."), "Out of memory"),
    (MemoryError(), "Out of memory"),
    (OSError(28, "No space left on device", "runs/x/.checkpoint.pt.123.abcdefgh.part"),
     "No space left on device"),
])
def test_running_out_of_memory_or_disk_is_a_clear_error(capsys, raised, words):
    def main(argv):
        raise raised
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, [])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("error: ") and words in err


def test_a_programming_error_still_shows_its_traceback():
    def main(argv):
        raise RuntimeError("shape mismatch in our own code")
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_cli(main, [])
