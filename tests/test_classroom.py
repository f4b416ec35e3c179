"""Classroom tooling: student copies (tools/student_copies.py), for whatever notebooks exist in
notebooks/. (The static site, tools/build_site.py, is checked in tests/test_site.py.)"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest

import student_copies
from student_copies import STUB_SOURCE, is_solution, is_stub, notebook_paths
from support import REPO

NOTEBOOKS = notebook_paths(REPO / "notebooks")
# Student copies that are executed top to bottom: the notebooks that run in seconds.
# (02 times code for half a minute; later ones train.) Only those that exist are run.
QUICK = ["01_backward_vs_autograd_grad", "03_clone_and_create_graph"]
QUICK_PRESENT = [n for n in QUICK if (REPO / "notebooks" / f"{n}.ipynb").exists()]
CELL_TIMEOUT = 120  # seconds per cell; these cells take well under one


def by_name(path: Path) -> str:
    return path.stem


# ---------------------------------------------------------------- student copies

@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("classroom") / "student"
    assert student_copies.main(["--out", str(out)]) == 0  # what `make student` runs
    return out


def exercise_cell(cell) -> bool:
    return cell.cell_type == "markdown" and re.search(r"^### Exercise \d+", cell.source, re.M)


def leaked_lines(original, copy_path: Path) -> tuple[list[str], int]:
    """Lines of solution code found in the student copy, and how many lines were looked for.

    A solution line is looked for only if it appears nowhere else in the original notebook
    (in no other cell's source): then finding it in the copy can only mean the solution leaked.
    """
    elsewhere = "\n".join(c.source for c in original.cells if not is_solution(c)) + STUB_SOURCE
    copy = nbformat.read(copy_path, as_version=4)
    copy_text = "\n".join(c.source for c in copy.cells)
    raw = copy_path.read_text(encoding="utf-8")  # outputs, metadata, attachments: everything
    looked_for, leaked = 0, []
    for cell in original.cells:
        if not is_solution(cell):
            continue
        for line in cell.source.splitlines():
            line = line.strip()
            if not line or line.lower() == "# solution" or line in elsewhere:
                continue
            looked_for += 1
            if line in copy_text or json.dumps(line, ensure_ascii=False)[1:-1] in raw:
                leaked.append(line)
    return leaked, looked_for


@pytest.mark.parametrize("path", NOTEBOOKS, ids=by_name)
def test_student_copy_has_no_outputs_and_no_solutions(path, student_dir):
    original = nbformat.read(path, as_version=4)
    copy_path = student_dir / "notebooks" / path.name
    copy = nbformat.read(copy_path, as_version=4)
    nbformat.validate(copy)

    for cell in copy.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]

    # Same cells in the same order; only the solutions differ, and each became a stub.
    assert len(copy.cells) == len(original.cells)
    solutions = 0
    for i, (before, after) in enumerate(zip(original.cells, copy.cells)):
        if is_solution(before):
            solutions += 1
            assert is_stub(after) and after.source == STUB_SOURCE, f"cell {i} is not a stub"
            assert exercise_cell(copy.cells[i - 1]), f"cell {i}: its exercise text is missing"
        else:
            assert not is_stub(after)
            assert (after.cell_type, after.source) == (before.cell_type, before.source)
    assert sum(map(is_stub, copy.cells)) == solutions
    assert sum(bool(exercise_cell(c)) for c in copy.cells) == \
        sum(bool(exercise_cell(c)) for c in original.cells)

    leaked, looked_for = leaked_lines(original, copy_path)
    assert not leaked, f"solution text in the student copy: {leaked}"
    if solutions:
        assert looked_for > 0, "no distinctive solution line to look for: the check is vacuous"


def test_student_copies_are_written_for_every_notebook_with_images(student_dir):
    written = sorted(p.name for p in (student_dir / "notebooks").glob("*.ipynb"))
    assert written == sorted(p.name for p in NOTEBOOKS)
    for image in (REPO / "images").glob("*.png"):  # the notebooks' ../images/ links work
        assert (student_dir / "images" / image.name).read_bytes() == image.read_bytes()


def test_student_copies_refuse_to_overwrite_a_folder_they_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="not empty"):
        student_copies.main(["--out", str(tmp_path)])
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def execution_problems(nb) -> list[str]:
    """Why an executed student copy is not acceptable (empty: it is).

    Every code cell must have run; an exercise stub must raise NotImplementedError (and
    nothing else); a cell tagged raises-exception may raise (it does so on purpose, as in the
    original notebook); any other cell must not raise.
    """
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if cell.get("execution_count") is None:
            problems.append(f"cell {i} did not run")
        if is_stub(cell):
            names = [e.get("ename") for e in errors]
            if names != ["NotImplementedError"]:
                problems.append(f"exercise stub {i} raised {names}, not NotImplementedError")
        elif errors and "raises-exception" not in cell.get("metadata", {}).get("tags", []):
            e = errors[0]
            problems.append(f"cell {i} raised {e.get('ename')}: {e.get('evalue')}\n"
                            f"{cell.source[:200]}")
    return problems


def test_execution_check_is_honest():
    """The checker itself: it rejects a failing ordinary cell, a stub that fails differently,
    and a cell that never ran; it accepts stubs raising NotImplementedError."""
    def cell(source, ename=None, count=1, tags=()):
        c = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})
        c.execution_count = count
        if ename:
            c.outputs = [nbformat.v4.new_output("error", ename=ename, evalue="", traceback=[])]
        return c

    ok = nbformat.v4.new_notebook(cells=[cell("x = 1"), cell(STUB_SOURCE, "NotImplementedError"),
                                         cell("1/0", "ZeroDivisionError", tags=["raises-exception"])])
    assert execution_problems(ok) == []
    for bad in (cell("y = undefined", "NameError"), cell(STUB_SOURCE, "NameError"),
                cell(STUB_SOURCE), cell("x = 2", count=None)):
        nb = nbformat.v4.new_notebook(cells=[*ok.cells, bad])
        assert len(execution_problems(nb)) == 1, bad


@pytest.mark.parametrize("name", QUICK_PRESENT)
def test_student_copy_runs_top_to_bottom(name, student_dir, tmp_path):
    from nbclient import NotebookClient

    course = tmp_path / "course"  # a copy: executing must not touch the build or the repo
    shutil.copytree(student_dir, course)
    folder = course / "notebooks"
    nb = nbformat.read(folder / f"{name}.ipynb", as_version=4)
    stubs = sum(map(is_stub, nb.cells))
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, startup_timeout=120, kernel_name="python3",
                            allow_errors=True,  # so we see every cell; execution_problems judges
                            resources={"metadata": {"path": str(folder)}})
    client.execute(cwd=str(folder), env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert execution_problems(nb) == []
    assert sum(is_stub(c) and c.outputs[0]["ename"] == "NotImplementedError" for c in nb.cells) \
        == stubs
