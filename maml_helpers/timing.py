"""Timing that a reader can trust: warm-up, interleaved repeats, median and spread.

Variants are run in a fresh random order in every round, so a slow minute of the machine
(another process, CPU frequency) hits all of them alike instead of one.
"""
from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass
class Timing:
    name: str
    samples: list[float] = field(default_factory=list)  # seconds per call, one per round

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def iqr(self) -> tuple[float, float]:
        q = statistics.quantiles(self.samples, n=4)
        return q[0], q[2]


def compare_timings(fns: dict[str, Callable[[], object]], rounds: int = 15, warmup: int = 2,
                    number: int = 1, seed: int = 0) -> dict[str, Timing]:
    """Time each function ``number`` times per round, over ``rounds`` interleaved rounds."""
    if rounds < 2:
        raise ValueError("need at least 2 rounds to report a spread")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    results = {name: Timing(name) for name in fns}
    order = list(fns)
    rng = random.Random(seed)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            start = time.perf_counter()
            for _ in range(number):
                fns[name]()
            results[name].samples.append((time.perf_counter() - start) / number)
    return results


def timing_table(results: dict[str, Timing], baseline: str | None = None, unit: str = "ms") -> str:
    """A text table: median, interquartile range, and ratio to ``baseline``'s median."""
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    base = results[baseline].median if baseline else None
    rows = [f"{'variant':<22s} {'median':>10s} {'IQR':>21s} {'vs ' + baseline if baseline else '':>12s}"]
    for t in results.values():
        lo, hi = t.iqr
        ratio = f"{t.median / base:.2f}x" if base else ""
        rows.append(f"{t.name:<22s} {t.median * scale:8.3f}{unit} "
                    f"[{lo * scale:8.3f}, {hi * scale:8.3f}] {ratio:>12s}")
    return "\n".join(rows)


def plot_timings(results: dict[str, Timing], ax=None, title: str = "", unit: str = "ms"):
    """Box plot of every variant's samples: the spread is part of the result."""
    import matplotlib.pyplot as plt

    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.5 + 0.5 * len(results)))
    names = list(results)
    ax.boxplot([[s * scale for s in results[n].samples] for n in names], orientation="horizontal")
    ax.set_yticks(range(1, len(names) + 1), names)
    ax.set_xlabel(f"time per call ({unit})")
    ax.set_title(title)
    return ax


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The machine's float32 torch.mm rate (GFLOP/s), best of a few, as a yardstick."""
    a, b = torch.rand(size, size), torch.rand(size, size)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9
