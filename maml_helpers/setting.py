"""A run's setting, checked in one place, before any data is loaded or any file written.

The argparse ``type=`` functions below give every numeric flag its range, so a bad value is
refused as it is parsed, with the flag's name. ``check_setting`` applies the same ranges to a
whole setting (from flags, or recorded in a checkpoint) and refuses the combinations that
cannot work, naming both flags. Library functions use ``check`` for their own arguments.
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np
import torch

from .errors import MamlError
from .model import ARCHITECTURES, ConvNet
from .omniglot import DRAWINGS, LAYOUT, PAPER_META_TRAIN

SPLITS = ("paper", "alphabet")
MAX_SEED = 2**32 - 1
ROTATIONS = 4  # quarter turns: each character makes four classes (tasks.py)
ALL_CLASSES = ROTATIONS * sum(characters for _, characters in LAYOUT.values())


def _integer(value, low: int, what: str, high: int | None = None) -> int:
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value!r}") from None
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low
            or (high is not None and value > high)):
        raise argparse.ArgumentTypeError(f"must be {what}, got {value!r}")
    return int(value)


def _real(value, low: float, inclusive: bool, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be {what}, got {value!r}") from None
    # float() accepts 'nan' and 'inf': refused here, they would silently poison the weights
    if isinstance(value, bool) or not math.isfinite(number) or number < low or (number == low and not inclusive):
        raise argparse.ArgumentTypeError(f"must be {what}, got {value!r}")
    return number


def positive_int(value) -> int:
    return _integer(value, 1, "a positive integer")


def nonnegative_int(value) -> int:
    return _integer(value, 0, "an integer >= 0")


def ways_int(value) -> int:
    return _integer(value, 1, f"an integer from 1 to {ALL_CLASSES} (Omniglot's classes: characters x "
                    f"{ROTATIONS} rotations)", high=ALL_CLASSES)


def threads_int(value) -> int:
    cpus = os.cpu_count() or 1  # more threads than CPUs only slow torch down (and 10**5 crash it)
    return _integer(value, 1, f"an integer from 1 to {cpus} (this machine's CPUs)", high=cpus)


def task_count(value) -> int:
    return _integer(value, 2, "an integer >= 2 (a confidence interval needs two tasks)")


def timing_rounds(value) -> int:
    return _integer(value, 2, "an integer >= 2 (a spread needs two timings)")


def seed_int(value) -> int:
    return _integer(value, 0, f"an integer from 0 to {MAX_SEED}", high=MAX_SEED)


def finite_positive_float(value) -> float:
    return _real(value, 0.0, False, "a finite number > 0")


def finite_nonnegative_float(value) -> float:
    return _real(value, 0.0, True, "a finite number >= 0")


def available_device(value) -> torch.device:
    """A device this machine has: cpu, cuda, cuda:N or mps."""
    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError):
        raise argparse.ArgumentTypeError(f"{value!r} is not a device: use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = "was built without CUDA" if torch.version.cuda is None else "sees no CUDA GPU"
            raise argparse.ArgumentTypeError(f"{value!r}: this PyTorch ({torch.__version__}) {why}. Use cpu")
        if (dev.index or 0) >= count:
            raise argparse.ArgumentTypeError(f"{value!r}: this machine has {count} CUDA device(s), "
                                             f"cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{value!r}: MPS (Apple GPU) is not available here. Use cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"{value!r} is not supported: use cpu, cuda, cuda:N or mps")
    return dev


def _writable_folder(path: Path, value) -> Path:
    """``path`` as a folder to write in: the nearest existing one at or above it must be a
    writable folder (checked now, so that a long run does not fail at its first save)."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write in {value}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write in {value}: {existing} is not writable")
    return path


def output_file(value) -> Path:
    """A file to write (atomically): not a folder, in a folder we can write."""
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a folder: give a file name, e.g. {path / 'result.json'}")
    _writable_folder(path.parent, value)
    return path


def output_folder(value) -> Path:
    return _writable_folder(Path(value), value)


def check(flag: str, value, kind, error=MamlError):
    """``kind(value)`` for library callers: the flag's range, as a clear ``error`` naming it."""
    try:
        return kind(value)
    except argparse.ArgumentTypeError as err:
        raise error(f"{flag} {err}.") from None


# The range of every entry of a run's setting (its keys are train's flags). Entries marked
# optional came later than the first checkpoints, which hold their defaults.
RANGES = {"ways": ways_int, "shots": positive_int, "queries": positive_int,
          "meta_batch": positive_int, "inner_lr": finite_positive_float, "train_steps": positive_int,
          "test_steps": nonnegative_int, "meta_lr": finite_positive_float, "hidden": positive_int,
          "first_order_iterations": nonnegative_int, "seed": seed_int, "validation": nonnegative_int,
          "final_meta_lr": finite_positive_float}
CHOICES = {"arch": ARCHITECTURES, "split": SPLITS, "first_order": (False, True)}
OPTIONAL = {"first_order_iterations": 0, "decay_start": None, "final_meta_lr": 1e-4, "init": None}


def network(config: dict) -> ConvNet:
    """The network a (checked) setting describes; one too large to build is a clear error."""
    try:
        return ConvNet(config["ways"], config["hidden"], config["arch"])
    except (RuntimeError, TypeError, MemoryError) as err:  # e.g. can't allocate memory, overflow
        raise MamlError(f"Cannot build the network for --ways {config['ways']} and --hidden "
                        f"{config['hidden']} ({str(err).splitlines()[0][:120]}). Use a smaller --hidden "
                        "(the paper: 64).") from None


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def check_drawings(shots: int, queries: int, shots_name: str = "--shots", queries_name: str = "--queries"):
    if shots + queries > DRAWINGS:
        raise MamlError(f"{shots_name} {shots} and {queries_name} {queries} ask for {shots + queries} "
                        f"drawings per class, but every Omniglot character has only {DRAWINGS}. Choose "
                        f"them so that shots + queries <= {DRAWINGS}.")


def check_setting(config: dict) -> dict:
    """The setting with every entry in its range and its optional entries filled in, or a
    MamlError naming the flag (and, for an impossible combination, both flags)."""
    if not isinstance(config, dict):
        raise MamlError(f"a setting is a dict of flags, got {type(config).__name__}.")
    config = {**config, **{k: v for k, v in OPTIONAL.items() if k not in config}}
    missing = [k for k in (*RANGES, *CHOICES) if k not in config]
    if missing:
        raise MamlError(f"the setting lacks {', '.join(map(repr, missing))}.")
    for key, kind in RANGES.items():
        config[key] = check(flag(key), config[key], kind)
    for key, allowed in CHOICES.items():
        if config[key] not in allowed or type(config[key]) is not type(allowed[0]):
            raise MamlError(f"{flag(key)} must be one of {', '.join(map(repr, allowed))}, got {config[key]!r}.")
    if config["decay_start"] is not None:
        config["decay_start"] = check("--decay-start", config["decay_start"], nonnegative_int)
        if config["final_meta_lr"] > config["meta_lr"]:
            raise MamlError(f"--final-meta-lr {config['final_meta_lr']:g} is above --meta-lr "
                            f"{config['meta_lr']:g}, so the cosine from --decay-start would raise the "
                            "learning rate. Use a --final-meta-lr below --meta-lr, or drop --decay-start.")
    check_drawings(config["shots"], config["queries"])
    # Characters that --validation may hold out and still leave some for meta-training.
    available = PAPER_META_TRAIN if config["split"] == "paper" else LAYOUT["background"][1]
    if config["validation"] >= available:
        raise MamlError(f"--validation {config['validation']} holds out every meta-training character of "
                        f"--split {config['split']} ({available} in all). Use a --validation below "
                        f"{available} (the paper: 100).")
    return config
