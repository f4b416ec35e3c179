"""Google Colab opens one notebook without the rest of the course. The notebook's first cell
(written by tools/cloud.py) clones the course and calls ``finish_setup``, which does the rest:
the packages Colab lacks, at the versions requirements.txt pins (Colab's own torch is kept: it
matches its GPU, and reinstalling it costs gigabytes), Graphviz's ``dot``, the paths, and the
notebooks folder as working directory. Nothing here runs outside Colab.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# What the course imports beyond Python itself and torch: import name -> requirements.txt name.
PACKAGES = {"numpy": "numpy", "PIL": "pillow", "matplotlib": "matplotlib", "tqdm": "tqdm",
            "torchviz": "torchviz", "graphviz": "graphviz", "higher": "higher", "ipywidgets": "ipywidgets"}


def pins(course) -> dict[str, str]:
    """Import name -> the requirement requirements.txt pins (e.g. 'PIL' -> 'pillow==13.0.0')."""
    pinned = {}
    for line in (Path(course) / "requirements.txt").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s#;]+)", line)
        if m:
            pinned[m.group(1).lower()] = f"{m.group(1)}=={m.group(2)}"
    missing = [req for req in PACKAGES.values() if req not in pinned]
    if missing:
        raise RuntimeError(f"requirements.txt pins no version of {', '.join(missing)}; pin it there first")
    return {name: pinned[req] for name, req in PACKAGES.items()}


def finish_setup(course) -> None:
    """Install what is missing, put the course on the paths, and move into its notebooks/."""
    course = str(course)
    missing = [pin for name, pin in pins(course).items() if importlib.util.find_spec(name) is None]
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)
    if shutil.which("dot") is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-qq", "-y", "graphviz"], check=True)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if course not in paths:  # the commands a notebook starts (python -m maml_helpers.…) import it too
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [course, *paths] if p)
    os.chdir(os.path.join(course, "notebooks"))
