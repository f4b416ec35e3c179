"""Writing files so that nothing partial is ever left behind."""
from __future__ import annotations

import glob
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterable


def temp_file(path: Path) -> tuple[int, str]:
    """(fd, name) of a new temporary file beside ``path``, named '.<name>.<pid>.<random>.part'.

    The process id in the name tells later runs whether its writer is gone (killed mid-write),
    so that ``remove_stale_parts`` can delete it. Stale parts of ``path`` are removed first.
    """
    remove_stale_parts(path.parent, [path.name])
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".part")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it into place.

    A crash or an exception mid-write leaves the old file (or none), never a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file(path)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def remove_stale_parts(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Delete the temporary files that ``temp_file`` made for ``names`` in ``folder`` and whose
    process is gone (a kill -9 cannot clean up); return them. Nothing else is touched: other
    files ending in .part, and the parts of running processes, stay."""
    folder, removed = Path(folder), []
    if not folder.is_dir():
        return removed
    for name in names:
        # mkstemp adds 8 characters; parts written before the pid was in the name lack it
        pattern = re.compile(rf"\.{re.escape(name)}\.(?:(\d+)\.)?[a-z0-9_]{{8}}\.part")
        for part in folder.glob(f".{glob.escape(name)}.*.part"):
            match = pattern.fullmatch(part.name)
            if match and not (match[1] and _running(int(match[1]))):
                part.unlink(missing_ok=True)
                removed.append(part)
    return removed


def _running(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate it there: never delete a part we cannot check
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or no pid at all: leave it
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
