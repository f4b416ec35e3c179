"""What the commands (train, evaluate, bench) share: the machine flags, defined once."""
from __future__ import annotations

import argparse
import sys

import torch

from .allocator import keep_freed_memory
from .setting import available_device, output_file, threads_int


def add_machine_flags(parser: argparse.ArgumentParser, device: bool = True, json: str | None = None) -> None:
    """--device, --threads, --malloc, and --json (with ``json`` as its help) where asked for."""
    if device:
        parser.add_argument("--device", type=available_device,
                            default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=threads_int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--malloc", choices=("keep", "default"), default="keep",
                        help="keep: glibc keeps freed memory for reuse, faster on CPU and the same "
                             "numbers (allocator.py); default: the allocator's own behaviour")
    if json:
        parser.add_argument("--json", type=output_file, help=json)


def use_machine_flags(args: argparse.Namespace) -> bool:
    """Apply --malloc and --threads; True if freed memory is now kept for reuse."""
    kept = args.malloc == "keep" and keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    return bool(kept)


class Progress:
    """``progress(done)`` callback drawing a tqdm bar on stderr. The bar appears at the first
    update, so an argument or data error found before any work prints alone."""

    def __init__(self, total: int, desc: str, unit: str = "it", disable: bool = False):
        self.total, self.desc, self.unit, self.disable, self.bar = total, desc, unit, disable, None

    def __call__(self, done: int) -> None:
        if self.bar is None:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, disable=self.disable,
                            mininterval=1.0, file=sys.stderr)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
