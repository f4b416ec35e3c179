"""Checkpoints: written atomically, read safely (``weights_only=True``), verified before use.

A checkpoint is a plain dict of tensors, numbers, strings and lists, so it loads without
unpickling arbitrary code. Its ``format`` entry says it was written by maml_helpers. Reading
checks the zip's CRCs (``torch.load`` does not: a flipped bit would load) and that every
tensor is finite; ``load_model`` also checks the recorded setting and that each tensor has
the name, shape and dtype that setting gives the network.
"""
from __future__ import annotations

import os
import pickle
import zipfile
import zlib
from pathlib import Path

import torch

from .errors import CheckpointError, MamlError
from .files import atomic_write
from .model import ARCHITECTURES, ConvNet
from .setting import check_setting, network

FORMAT = "maml_helpers.checkpoint/1"
# What --resume needs beyond the model (model.pt holds the model and its setting only).
TRAINING_KEYS = ("optimizer", "iteration", "elapsed_s", "curve", "best")


def nonfinite_tensors(value, name: str = "") -> list[str]:
    """The names (e.g. 'model/head.weight') of the tensors in ``value`` holding NaN or inf."""
    if isinstance(value, torch.Tensor):
        return [name or "tensor"] if value.is_floating_point() and not torch.isfinite(value).all() else []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    return [bad for k, v in items for bad in nonfinite_tensors(v, f"{name}/{k}" if name else str(k))]


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` atomically: a crash mid-write keeps the previous checkpoint intact.

    A learning curve (``state["curve"]``, one dict per iteration) is stored by column, which
    does not repeat the field names in every row; ``load_checkpoint`` gives the rows back.
    """
    if isinstance(state.get("curve"), list):
        rows = state["curve"]
        fields = list(dict.fromkeys(k for r in rows for k in r))  # rows of older runs lack later fields
        state = {**state, "curve": {"columns": {k: [r.get(k) for r in rows] for k in fields}}}
    bad = nonfinite_tensors(state)
    if bad:  # train stops before this (TrainingDiverged); this guards every other caller
        raise CheckpointError(f"Refusing to write {path}: {_names(bad)} hold NaN or inf. The previous "
                              "file is kept.")
    atomic_write(path, lambda f: torch.save({"format": FORMAT, **state}, f))


def _curve_rows(curve):
    """Rows from a curve stored by column (or already rows, as older checkpoints hold it)."""
    if not isinstance(curve, dict):
        return curve
    columns = curve["columns"]
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by ``save_checkpoint``; a clear CheckpointError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}: check the path (training writes "
                              "<out>/checkpoint.pt and <out>/model.pt).")
    if not zipfile.is_zipfile(path):  # torch.save always writes a zip archive
        raise CheckpointError(f"Cannot read {path}: it is not a PyTorch checkpoint file (corrupt, "
                              "truncated, or some other file). Use a checkpoint written by "
                              "`python -m maml_helpers.train`.")
    try:
        with zipfile.ZipFile(path) as zf:
            bad_member = zf.testzip()  # the first member whose CRC does not match, if any
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as err:
        raise _corrupt(path, err) from None
    if bad_member:
        raise CheckpointError(f"Cannot use {path}: it is corrupt ({bad_member} fails the zip's CRC "
                              "check: a damaged copy or a flipped bit). Use another checkpoint, e.g. "
                              "an earlier one, or copy it again.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"Refusing to load {path}: it holds Python objects beyond tensors and plain data, and "
            "unpickling those could run arbitrary code (we load with weights_only=True). Use a "
            "checkpoint written by `python -m maml_helpers.train`.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise _corrupt(path, err) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a PyTorch file but not a maml_helpers checkpoint (no '{FORMAT}' format "
            "tag), so its setting (ways, shots, architecture) is unknown. Use a checkpoint "
            "written by `python -m maml_helpers.train`.")
    if "curve" in state:
        try:
            state["curve"] = _curve_rows(state["curve"])
        except (KeyError, TypeError, AttributeError):
            raise CheckpointError(f"{path} is damaged: its learning curve cannot be read. Use "
                                  "another checkpoint, e.g. an earlier one.") from None
    bad = nonfinite_tensors(state)
    if bad:
        raise CheckpointError(f"Cannot use {path}: {_names(bad)} hold NaN or inf (the run had "
                              "diverged). Use an earlier checkpoint.")
    return state


def _corrupt(path: Path, err: Exception) -> CheckpointError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return CheckpointError(f"Cannot read {path}: the checkpoint is corrupt or truncated ({first}). "
                           "Use another checkpoint, e.g. an earlier one.")


def _names(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def load_model(path: str | os.PathLike, training: bool = False) -> tuple[ConvNet, dict]:
    """The model in a checkpoint (model.pt or checkpoint.pt) and the checkpoint's state, whose
    setting is checked (``check_setting``) and filled in. ``training``: also require what
    --resume needs (the optimizer, the iteration, the curve)."""
    state = load_checkpoint(path)
    needed = ("config", "model", *(TRAINING_KEYS if training else ()))
    missing = [k for k in needed if k not in state]
    if missing:
        what = ("a model file (like model.pt), not a training state" if training and "model" in state
                else "damaged")
        raise CheckpointError(f"{path} is {what}: it lacks {', '.join(map(repr, missing))}. "
                              + ("--resume needs the checkpoint.pt that training writes beside model.pt."
                                 if training else "Use a checkpoint written by `python -m maml_helpers.train`."))
    best = state.get("best")
    if training and not (isinstance(state["iteration"], int) and isinstance(state["elapsed_s"], (int, float))
                         and isinstance(state["curve"], list) and isinstance(best, dict)
                         and {"val_acc", "iteration"} <= best.keys()):
        raise CheckpointError(f"{path} is damaged: its training progress (iteration, time, curve, best "
                              "model) cannot be read. Resume from another checkpoint, or start a new run.")
    try:
        state["config"] = check_setting(state["config"])
    except MamlError as err:
        raise CheckpointError(f"{path} records a setting that cannot be used: {err} Use a checkpoint "
                              "written by `python -m maml_helpers.train`.") from None
    config = state["config"]
    model = network(config)
    problems = _tensor_problems(model.state_dict(), state["model"])
    if problems:
        fits = _setting_that_fits(state["model"])
        fit = (f"; its tensors would fit ways={fits[0]}, hidden={fits[1]}, arch={fits[2]!r}" if fits
               else "; no setting of the network fits its tensors")
        raise CheckpointError(
            f"{path} is damaged: its model does not match its recorded setting (ways={config['ways']}, "
            f"hidden={config['hidden']}, arch={config['arch']!r}): {_names(problems)}{fit}. Use a "
            "checkpoint written by `python -m maml_helpers.train`.")
    model.load_state_dict(state["model"])
    return model, state


def _tensor_problems(expected: dict, found) -> list[str]:
    if not isinstance(found, dict) or not all(isinstance(v, torch.Tensor) for v in found.values()):
        return ["its 'model' entry is not a dict of tensors"]
    problems = [f"{k} is missing" for k in expected if k not in found]
    problems += [f"{k} is not a tensor of the network" for k in found if k not in expected]
    for k in expected.keys() & found.keys():
        want, got = expected[k], found[k]
        if got.shape != want.shape:
            problems.append(f"{k} has shape {tuple(got.shape)}, the setting needs {tuple(want.shape)}")
        elif got.dtype != want.dtype:
            problems.append(f"{k} is {got.dtype}, expected {want.dtype}")
    return sorted(problems)


def _setting_that_fits(tensors) -> tuple[int, int, str] | None:
    """(ways, hidden, arch) of a network with exactly these tensors' names and shapes, if any."""
    head = tensors.get("head.weight") if isinstance(tensors, dict) else None
    if not isinstance(head, torch.Tensor) or head.dim() != 2:
        return None
    ways, hidden = head.shape
    for arch in ARCHITECTURES:
        try:
            with torch.device("meta"):  # shapes only, no memory
                model = ConvNet(ways, hidden, arch)
        except (ValueError, RuntimeError):
            return None
        if not _tensor_problems(model.state_dict(), tensors):
            return ways, hidden, arch
    return None
