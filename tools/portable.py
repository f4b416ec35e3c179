"""Replay every notebook under other numerical settings: `make test-portable`.

A student's laptop, a fork's CI runner, Binder and Colab round floating-point arithmetic
differently from the machine that wrote the committed outputs: another instruction set,
another BLAS code path, another thread count. PyTorch can be told to take such paths here:

- ATEN_CPU_CAPABILITY   PyTorch's own kernels without SIMD (default) or with AVX2 only;
- MKL_CBWR              Intel MKL's conditional numerical reproducibility branch (matrix products);
- ONEDNN_MAX_CPU_ISA    the instruction set oneDNN may use (convolutions);
- OMP_NUM_THREADS       how many threads split a reduction.

Each replay first shows, with a probe of bit patterns, which of the settings really change
the arithmetic on this machine (a replay whose settings change nothing proves nothing), then
runs nbval on every notebook under them. A compared output that changes under any replay is
float rounding leaking into a checked cell: print it under `# NBVAL_IGNORE_OUTPUT` and assert
the property instead (CONTRIBUTING.md).

Usage: python tools/portable.py [--probe-only] [pytest options, e.g. notebooks/04_*.ipynb]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

REPLAYS = {
    "no SIMD, MKL compatible, oneDNN SSE4.1, 1 thread": {
        "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41",
        "OMP_NUM_THREADS": "1"},
    "AVX2, MKL AVX2, oneDNN AVX2, 2 threads": {
        "ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
        "OMP_NUM_THREADS": "2"},
}
# One notebook per worker, as `make test` runs them (pytest-xdist; serial without it).
PARALLEL = ["-n", "auto", "--dist", "loadfile"] if importlib.util.find_spec("xdist") else []
# Variables that would pin the arithmetic of the replays to the caller's choice.
NUMERIC_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
                     "OMP_NUM_THREADS", "MKL_NUM_THREADS")

# Run in a child Python: the bit patterns of the operations the notebooks use most.
PROBE = r"""
import hashlib, json, torch, torch.nn.functional as F
g = torch.Generator().manual_seed(0)
a, b = torch.randn(256, 256, generator=g), torch.randn(256, 256, generator=g)
x, w = torch.randn(5, 32, 14, 14, generator=g), torch.randn(32, 32, 3, 3, generator=g)
ops = {"matmul": lambda: a @ b, "conv2d": lambda: F.conv2d(x, w, padding=1),
       "batch_norm": lambda: F.batch_norm(x, None, None, training=True),
       "sum": lambda: x.sum(dim=(0, 2, 3)), "exp": lambda: torch.exp(a)}
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
                  **{name: hashlib.sha256(op().numpy().tobytes()).hexdigest()[:12] for name, op in ops.items()}}))
"""


def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in NUMERIC_VARIABLES}


def probe(settings: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean_environment(), **settings},
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def changed_operations(native: dict, replay: dict) -> list[str]:
    return [op for op in native if op not in ("capability", "threads") and native[op] != replay[op]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe-only", action="store_true",
                        help="show what each replay's settings change, without replaying")
    args, pytest_args = parser.parse_known_args(argv)

    native = probe({})
    print(f"this machine: PyTorch kernels {native['capability']}, {native['threads']} threads")
    changes = {}
    for name, settings in REPLAYS.items():
        replay = probe(settings)
        changes[name] = changed_operations(native, replay)
        print(f"replay '{name}': PyTorch kernels {replay['capability']}; results that differ "
              f"bit for bit from this machine's own: {', '.join(changes[name]) or 'none'}")
    if not any(changes.values()):
        print("error: no replay changes the arithmetic on this machine, so replaying proves nothing",
              file=sys.stderr)
        return 1
    if args.probe_only:
        return 0

    failed = []
    for name, settings in REPLAYS.items():
        if not changes[name]:
            print(f"\n== skipping '{name}': it changes nothing here")
            continue
        print(f"\n== notebooks under '{name}': {' '.join(f'{k}={v}' for k, v in settings.items())}",
              flush=True)
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", *PARALLEL, *(pytest_args or ["notebooks"])],
                               cwd=REPO, env={**clean_environment(), **settings})
        if code:
            failed.append(name)
    if failed:
        print(f"\nnotebook outputs changed under: {'; '.join(failed)}", file=sys.stderr)
        return 1
    print(f"\nevery compared notebook output is the same under all {len(REPLAYS)} replays")
    return 0


if __name__ == "__main__":
    sys.exit(main())
