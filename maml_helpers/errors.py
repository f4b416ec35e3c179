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


OUT_OF_MEMORY = ("Out of memory: the setting needs more memory than this machine (or GPU) has "
                 "free. Use a smaller --meta-batch, --hidden, --queries or --ways, or close other "
                 "programs.")


def _out_of_memory(err: BaseException) -> bool:
    """MemoryError, or PyTorch's allocators failing (CPU: "can't allocate memory"; CUDA: "out of
    memory", raised as torch.OutOfMemoryError, a RuntimeError)."""
    text = str(err)
    return isinstance(err, MemoryError) or (isinstance(err, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower()))


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a command's ``main``; turn MamlError into 'error: ...' and exit status 2. Running out
    of memory or of disk (a full disk, a folder taken away mid-run) is reported the same way:
    the files written are whole or absent (atomic writes), so a traceback would add nothing."""
    try:
        code = main(argv)
    except MamlError as err:
        _fail(str(err))
    except (MemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise
        _fail(OUT_OF_MEMORY)
    except OSError as err:
        where = f" ({err.filename})" if err.filename else ""
        _fail(f"Cannot read or write a file{where}: {err.strerror or err}. Free disk space or fix "
              "the folder's permissions, then run again (--resume continues a training run).")
    except KeyboardInterrupt:
        print("interrupted (the last checkpoint written is intact)", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
