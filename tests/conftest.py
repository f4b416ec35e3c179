"""Shared fixtures. The real Omniglot comes from OMNIGLOT_DIR; without it, the tests that need
it are skipped locally and fail in CI (where .ci/run sets MAML_REQUIRE_DATA=1)."""
from __future__ import annotations

import io
import os
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from support import REPO

# The tests' tensors are tiny: one thread is faster, and it avoids OpenMP threads spinning
# against whatever else the machine runs (seen here: 100x slower under load).
torch.set_num_threads(1)

# The commands in tools/ (lab.py, cloud.py, student_copies.py, ...) are imported by the tests.
sys.path.insert(0, str(REPO / "tools"))


@pytest.fixture(scope="session")
def omniglot_dir() -> Path:
    folder = os.environ.get("OMNIGLOT_DIR")
    if not folder or not Path(folder).is_dir():
        if os.environ.get("MAML_REQUIRE_DATA"):
            pytest.fail("OMNIGLOT_DIR is not set to the Omniglot folder, but MAML_REQUIRE_DATA is set")
        pytest.skip("set OMNIGLOT_DIR to the folder with images_background.zip / images_evaluation.zip")
    return Path(folder)


@pytest.fixture(scope="session")
def omniglot(omniglot_dir):
    """The full data set, preprocessed at most once per machine (it is cached)."""
    from maml_helpers.omniglot import load_omniglot

    return load_omniglot(omniglot_dir, download=False)


def write_mini_archive(source: Path, dest: Path, alphabets: int = 2, characters: int = 3,
                       drop: str | None = None, extra: dict[str, bytes] | None = None) -> Path:
    """A small real archive: the first drawings of a few alphabets, copied from ``source``."""
    kept: dict[str, set] = {}  # alphabet -> characters copied
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w") as out:
        for name in sorted(src.namelist()):
            parts = name.split("/")
            if len(parts) != 4 or name == drop:
                continue
            alphabet, character = parts[1], parts[2]
            if alphabet not in kept:
                if len(kept) >= alphabets:
                    continue
                kept[alphabet] = set()
            if character not in kept[alphabet]:
                if len(kept[alphabet]) >= characters:
                    continue
                kept[alphabet].add(character)
            out.writestr(name, src.read(name))
        for name, data in (extra or {}).items():
            out.writestr(name, data)
    return dest


@pytest.fixture(scope="session")
def mini_archives(omniglot_dir, tmp_path_factory) -> Path:
    """images_background.zip and images_evaluation.zip, 2 alphabets x 3 characters each."""
    folder = tmp_path_factory.mktemp("mini")
    for name in ("images_background.zip", "images_evaluation.zip"):
        write_mini_archive(omniglot_dir / name, folder / name)
    return folder


def png_bytes(size=(105, 105)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", size, 1).save(buf, format="PNG")
    return buf.getvalue()
