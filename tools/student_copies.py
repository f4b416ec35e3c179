#!/usr/bin/env python3
"""Write student copies of the course notebooks: no outputs, no solutions.

    python tools/student_copies.py --out build/student      (what `make student` runs)

For every notebook in notebooks/ (however many there are) it writes OUT/notebooks/NAME.ipynb:

- every output and execution count is cleared;
- every solution cell (a code cell tagged `solution`, or whose first line is `# Solution`, see
  CONTRIBUTING.md) is replaced by a stub code cell `# Your solution here` /
  `raise NotImplementedError`; the exercise's markdown cell before it is kept as it is.
  The stub is tagged `raises-exception`, so JupyterLab's "Run All" goes on past an exercise
  the student has not done yet.

It also copies images/ to OUT/images/, so the notebooks' `../images/...` links work when the
folder is handed out as it is. Students need the course's Python environment
(`maml_helpers` installed, e.g. via `make setup`) to run them.

OUT is replaced on every run; a non-empty folder that this script did not create is refused.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
STUB_SOURCE = "# Your solution here\nraise NotImplementedError"
STUB_TAGS = ["exercise-stub", "raises-exception"]
MARKER = ".student-copies"  # marks a folder this script made, so re-running may replace it


def is_solution(cell) -> bool:
    """A solution cell by the course convention: tagged `solution`, or starting `# Solution`."""
    if cell.get("cell_type") != "code":
        return False
    if "solution" in cell.get("metadata", {}).get("tags", []):
        return True
    lines = cell.get("source", "").lstrip().splitlines()
    return bool(lines) and lines[0].strip().lower() == "# solution"


def is_stub(cell) -> bool:
    return cell.get("cell_type") == "code" and cell.get("source", "").strip() == STUB_SOURCE


def notebook_paths(folder: Path = REPO / "notebooks") -> list[Path]:
    """The course notebooks, in course order (their names start with the number)."""
    return sorted(p for p in Path(folder).glob("*.ipynb") if not p.name.startswith("."))


def student_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A student copy of ``nb`` (which is not modified)."""
    out = nbformat.from_dict(nb)  # deep copy
    cells = []
    for cell in out.cells:
        if is_solution(cell):
            stub = nbformat.v4.new_code_cell(STUB_SOURCE, metadata={"tags": list(STUB_TAGS)})
            if "id" in cell:
                stub["id"] = cell["id"]
            cells.append(stub)
            continue
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)  # timings recorded by some clients
            cell.metadata.pop("scrolled", None)
            cell.metadata.pop("collapsed", None)
        cells.append(cell)
    out.cells = cells
    out.metadata.pop("widgets", None)  # saved widget state belongs to outputs
    return out


def prepare_out(out: Path, marker: str = MARKER, made_by: str = "tools/student_copies.py") -> None:
    """Make ``out`` an empty folder; replace it only if ``marker`` says a tool of ours made it."""
    if out.exists():
        if not out.is_dir():
            sys.exit(f"error: {out} exists and is not a folder")
        if any(out.iterdir()) and not (out / marker).exists():
            sys.exit(f"error: {out} is not empty and was not made by this script; "
                     "choose another --out or empty it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / marker).write_text(f"made by {made_by}; replaced on every run\n")


def write_student_copies(out: Path, source: Path = REPO / "notebooks",
                         images: Path = REPO / "images") -> list[Path]:
    """Write a student copy of every notebook in ``source`` into ``out/notebooks``."""
    out = Path(out)
    prepare_out(out)
    (out / "notebooks").mkdir()
    if Path(images).is_dir():
        shutil.copytree(images, out / "images")
    written = []
    for path in notebook_paths(source):
        nb = nbformat.read(path, as_version=4)
        copy = student_copy(nb)
        nbformat.validate(copy)
        target = out / "notebooks" / path.name
        nbformat.write(copy, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "student",
                        help="folder to write (default: build/student)")
    parser.add_argument("--notebooks", type=Path, default=REPO / "notebooks",
                        help="folder with the course notebooks (default: notebooks/)")
    args = parser.parse_args(argv)
    written = write_student_copies(args.out, args.notebooks)
    if not written:
        print(f"warning: no notebooks found in {args.notebooks}", file=sys.stderr)
    for path in written:
        nb = nbformat.read(path, as_version=4)
        stubs = sum(is_stub(c) for c in nb.cells)
        print(f"{path}: {stubs} exercise stub(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
