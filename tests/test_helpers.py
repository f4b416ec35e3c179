"""The small helpers the notebooks stand on: cmp, finite differences, graphs, timing, seeding."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from maml_helpers import cmp, finite_difference_grad, seed_everything
from maml_helpers.graphs import draw_graph, graph_lines, saved_tensor_bytes
from maml_helpers.timing import compare_timings, timing_table


def test_cmp_reports_exact_approx_and_maxdiff(capsys):
    assert cmp("same", 7200.0, torch.tensor(7200.0))
    assert cmp("close", [1.0, 2.0], torch.tensor([1.0, 2.0 + 1e-9], dtype=torch.float64))
    assert not cmp("far", 1.0, torch.tensor(1.1))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["same", "|", "exact:", "True", "|", "approx:", "True", "|", "maxdiff:", "0"]
    assert "exact: False | approx: True" in lines[1] and "maxdiff: 1e-09" in lines[1]
    assert "approx: False" in lines[2] and "maxdiff: 0.1" in lines[2]
    with pytest.raises(ValueError, match="shapes differ"):
        cmp("shape", [1.0], torch.zeros(2))


def test_finite_differences_match_a_known_gradient():
    x = torch.tensor([3.0, 4.0, 5.0], dtype=torch.float64)
    f = lambda: 3 * (x ** 2).prod()  # 3 x1^2 x2^2 x3^2: the course's first example
    (g,) = finite_difference_grad(f, [x])
    hand = torch.tensor([6 * 3 * 16 * 25, 6 * 9 * 4 * 25, 6 * 9 * 16 * 5], dtype=torch.float64)
    assert torch.allclose(g, hand, rtol=1e-8)
    assert x.tolist() == [3.0, 4.0, 5.0]  # restored after nudging
    with pytest.raises(TypeError, match="float64"):
        finite_difference_grad(f, [x.float()])


def test_graph_lines_show_structure_and_shared_nodes():
    x = torch.tensor(3.0, requires_grad=True)
    x_inner = x.clone()
    (g,) = torch.autograd.grad(2 - 2 * x_inner ** 4, x_inner, create_graph=True)
    outer = 1 - 3 * (2 * x_inner - 0.4 * g) ** 2
    lines = graph_lines(outer, {"x": x})
    assert lines[0] == "RsubBackward1"
    assert sum("CloneBackward0" in l for l in lines) == 2 and any("(shared)" in l for l in lines)
    assert lines[-1].strip().startswith("CloneBackward0")
    assert "AccumulateGrad (x)" in "\n".join(lines)
    assert graph_lines(torch.tensor(1.0)) == ["(no graph: this tensor does not require grad)"]


def test_saved_tensor_bytes_counts_what_backward_needs():
    x = torch.rand(1000, dtype=torch.float64, requires_grad=True)
    assert saved_tensor_bytes((x + 1).sum()) == 0            # d(x+1)/dx needs nothing saved
    assert saved_tensor_bytes((x * x).sum()) == 8000         # x saved once, though used twice
    y = torch.rand(1000, dtype=torch.float64)
    # y (for d/dx) and exp's result; not x, because y needs no gradient
    assert saved_tensor_bytes((x * y).exp().sum()) == 2 * 8000
    out = (x * x).sum()
    out.backward()                                           # freed: nothing is held any more
    assert saved_tensor_bytes(out) == 0


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_draw_graph_writes_a_png_and_nothing_else(tmp_path):
    x = torch.tensor(3.0, requires_grad=True)
    draw_graph(2 * x ** 2, {"x": x}, name="g", directory=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_timings_interleaves_and_reports():
    calls = []
    results = compare_timings({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                              rounds=5, warmup=1, number=2)
    assert len(calls) == 2 * 1 + 2 * 5 * 2 and all(len(t.samples) == 5 for t in results.values())
    table = timing_table(results, baseline="a").splitlines()
    assert table[1].startswith("a") and table[1].rstrip().endswith("1.00x") and len(table) == 3
    with pytest.raises(ValueError):
        compare_timings({"a": lambda: None}, rounds=1)


def test_seed_everything_makes_draws_repeat():
    seed_everything(3)
    a = (torch.rand(2).tolist(), np.random.rand(2).tolist())
    seed_everything(3)
    assert (torch.rand(2).tolist(), np.random.rand(2).tolist()) == a
