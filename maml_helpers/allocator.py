"""Keep freed memory for reuse: the cheapest CPU speed-up for the batched engine.

glibc's malloc serves every block above a threshold (128 KiB at start, at most 32 MiB) with
a fresh ``mmap`` and gives it back with ``munmap`` when freed. A batched meta-step allocates
and frees activations of 8 MB (strided net) to 480 MB (max-pool net, 15 queries) many times
per step, so the kernel hands out new pages again and again and zeroes each one on its
first touch (a page fault per 4 KiB). Measured on the course's 2-core machine, keeping the
memory made a batched second-order step a few per cent faster at 1 query per class on the
strided net, 1.4x at 15 queries (notebook 06), and cut the max-pool net's 15-query step
from 4.0 s to 2.6 s; notebook 06 and ``bench --malloc`` measure it on yours.

``keep_freed_memory()`` tells glibc to take all blocks from its heap (``M_MMAP_MAX = 0``)
and to keep up to 1 GiB of freed heap instead of returning it (``M_TRIM_THRESHOLD``): a
block freed in one meta-step is reused, already mapped, in the next. It changes no result,
only where memory comes from; the price is that the process keeps its peak memory. It
affects the whole process, every contender in a benchmark alike, and does nothing where
the C library is not glibc (macOS, Windows, musl).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's <malloc.h>
KEEP_SETTINGS = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 1 << 30}


def _mallopt():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Reuse freed blocks instead of unmapping them; True if glibc took the settings.

    There is no undo: glibc stops adapting its threshold once it is set by hand. To compare,
    run a second process without it (``bench --malloc default``).
    """
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return all(mallopt(param, value) == 1 for param, value in KEEP_SETTINGS.items())  # 1 = success
