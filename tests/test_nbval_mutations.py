"""nbval still has teeth: moving float rounding out of the compared outputs must not let a
wrong lesson pass. Each test changes one thing in a copy of a notebook, replays the copy with
nbval, and checks that it fails, in the cell that shows the damage."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

from support import REPO

NBVAL = ["--nbval", "--nbval-current-env", "--nbval-sanitize-with", str(REPO / "tests" / "sanitize.cfg"),
         "-p", "no:cacheprovider", "-q", "-rf"]


def replay(nb: nbformat.NotebookNode, name: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """nbval on a changed copy of a notebook, in a folder of its own (no rootdir config applies)."""
    path = tmp_path / name
    nbformat.write(nb, path)
    return subprocess.run([sys.executable, "-m", "pytest", *NBVAL, str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)


def test_a_changed_worked_input_fails_notebook_03(tmp_path):
    name = "03_clone_and_create_graph.ipynb"
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    [cell] = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("lr = 0.4\n")][:1]
    cell.source = cell.source.replace("lr = 0.4\n", "lr = 0.5\n", 1)  # the inner step of section 3
    result = replay(nb, name, tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    # x_inner = 2·3 − lr·(−216): 92.4 with the worked lr, 114.0 with the changed one
    assert "x_inner = 92.4" in result.stdout and "x_inner = 114.0" in result.stdout


def test_a_meta_gradient_without_the_hessian_term_fails_notebook_04(tmp_path):
    """The classic bug: the inner gradient taken without create_graph, so the meta-gradient
    silently becomes first order. Every number still looks plausible."""
    name = "04_maml_from_scratch.ipynb"
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    setup = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "seed_everything(0)" in c.source)
    nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(
        "import maml_helpers.maml as _maml\n"
        "_right_adapt = _maml.adapt\n"
        "def adapt(model, params, support_x, support_y, inner_lr, steps, create_graph=True, loss_fn=F.cross_entropy):\n"
        "    return _right_adapt(model, params, support_x, support_y, inner_lr, steps, create_graph=False, loss_fn=loss_fn)\n"
        "_maml.adapt = adapt  # what meta_gradient and meta_step call"))
    result = replay(nb, name, tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    # the finite-difference check of section 8 catches it, and so does the bug section
    assert "assert ok_so and not ok_fo" in result.stdout
    assert "not torch.allclose(flat(buggy), flat(second_order))" in result.stdout
