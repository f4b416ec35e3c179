"""User-facing errors: one clear paragraph, naming the problem and the fix.

Library code raises these; the command-line entry points print them without a
traceback and exit non-zero (see ``run_cli``).
"""
from __future__ import annotations

import sys
from typing import Callable


class MamlError(Exception):
    """Base class for errors the user can fix (bad data, bad arguments, bad files)."""


class DataError(MamlError):
    """Omniglot is missing, corrupt, or not where we were told to look."""


class TaskShapeError(MamlError, ValueError):
    """An N-way K-shot request that the data set cannot satisfy."""


class CheckpointError(MamlError):
    """A checkpoint that cannot be read or was not written by maml_helpers."""


class TrainingDiverged(MamlError):
    """The loss became NaN or infinite."""


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a command's ``main``; turn MamlError into 'error: ...' and exit status 2."""
    try:
        code = main(argv)
    except MamlError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted (the last checkpoint written is intact)", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
