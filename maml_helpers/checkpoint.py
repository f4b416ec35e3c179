"""Checkpoints: written atomically, read safely (``weights_only=True``), checked for origin.

A checkpoint is a plain dict of tensors, numbers, strings and lists, so it loads without
unpickling arbitrary code. Its ``format`` entry says it was written by maml_helpers.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from .errors import CheckpointError
from .files import atomic_write

FORMAT = "maml_helpers.checkpoint/1"


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` atomically: a crash mid-write keeps the previous checkpoint intact.

    A learning curve (``state["curve"]``, one dict per iteration) is stored by column, which
    does not repeat the field names in every row; ``load_checkpoint`` gives the rows back.
    """
    if isinstance(state.get("curve"), list):
        rows = state["curve"]
        fields = list(dict.fromkeys(k for r in rows for k in r))  # rows of older runs lack later fields
        state = {**state, "curve": {"columns": {k: [r.get(k) for r in rows] for k in fields}}}
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
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"Refusing to load {path}: it holds Python objects beyond tensors and plain data, and "
            "unpickling those could run arbitrary code (we load with weights_only=True). Use a "
            "checkpoint written by `python -m maml_helpers.train`.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise CheckpointError(f"Cannot read {path}: the checkpoint is corrupt or truncated "
                              f"({first}). Use another checkpoint, e.g. an earlier one.") from None
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
    return state
