"""The notebooks' widgets (maml_helpers/widgets.py), driven from Python: set a control's value
(or click a button), then check the numbers the widget recomputed against the lesson's own
values and hand formulas. No browser and no kernel needed; tests/test_browser.py moves a
slider in JupyterLab itself."""
from __future__ import annotations

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from maml_helpers import widgets
from maml_helpers.maml import adapt, forward_in_batches, params_of
from maml_helpers.model import ConvNet
from maml_helpers.sinusoid import X_RANGE, SineMLP, sample_sine_tasks
from maml_helpers.tasks import TaskSampler
from support import REPO

# plot_task hands torch tensors to matplotlib's imshow, which asks them for a numpy copy the old way
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
PNG = b"\x89PNG\r\n\x1a\n"


def notebook_functions(name: str, marker: str) -> dict:
    """Run the notebook's code cell containing ``marker`` and return what it defines: the
    widget is then tested with the very functions the notebook passes to it."""
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    [source] = [c.source for c in nb.cells if c.cell_type == "code" and marker in c.source]
    namespace = {"torch": torch}
    exec(compile(source, name, "exec"), namespace)
    return namespace


def weights(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def unchanged(model, before) -> bool:
    return all(torch.equal(a, p) for a, p in zip(before, model.parameters()))


# ---------------------------------------------------------------- notebook 01

def test_call_order_widget_shows_x1_grad_after_each_call(capsys):
    nb = notebook_functions("01_backward_vs_autograd_grad.ipynb", "def leaves():")
    panel = widgets.call_order_widget(nb["leaves"], nb["f"])
    # section 1: backward() twice writes, then adds
    assert panel.result["x1.grad"] == [None, 7200.0, 14400.0]
    assert "x1.grad = 14400.0" in panel.text.value
    # section 2: autograd.grad returns the gradient and leaves .grad alone
    panel.first.value = widgets.GRAD
    assert panel.result["x1.grad"] == [None, None, 7200.0]
    assert panel.result["returned"] == [[7200.0, 5400.0, 4320.0], None]
    panel.second.value = widgets.GRAD
    assert panel.result["x1.grad"] == [None, None, None]
    panel.first.value = widgets.BACKWARD
    assert panel.result["x1.grad"] == [None, 7200.0, 7200.0]

    panel.second.value = widgets.BACKWARD  # back to the start: the twin prints the same lines
    capsys.readouterr()
    panel.static()
    printed = capsys.readouterr().out.splitlines()
    assert printed == panel.lines and len(printed) == 3
    assert printed[0].endswith("x1.grad = None") and printed[2].endswith("x1.grad = 14400.0")
    # the text a page without widget support shows in its place: a sentence, not a repr dump
    assert panel._repr_mimebundle_()["text/plain"].startswith("Interactive widget")


# ---------------------------------------------------------------- notebook 03

def by_hand(x, lr, create_graph):
    """Notebook 03 on paper: g = −8x³, x_inner = 2x − lr·g, x.grad = −6·x_inner · d x_inner/dx
    with d x_inner/dx = 2, or 2 + 24·lr·x² when the gradient keeps its graph."""
    x_inner = 2 * x + 8 * lr * x**3
    x_grad = -6 * x_inner * (2 + 24 * lr * x**2 if create_graph else 2)
    return x_inner, x_grad, x - lr * x_grad


def test_inner_step_widget_follows_the_hand_formula():
    panel = widgets.inner_step_widget()
    auto = panel.result["auto"]
    assert (panel.x.value, panel.lr.value, panel.create_graph.value) == (3.0, 0.4, False)
    assert round(auto["x_inner"], 2) == 92.4 and round(auto["x.grad"], 2) == -1108.8
    assert round(auto["outer_loss"], 2) == -25612.28 and auto["d x_inner / dx"] == 2.0
    graph_false = panel.png
    assert graph_false.startswith(PNG)

    panel.create_graph.value = True  # section 3: same forward values, another x.grad
    auto = panel.result["auto"]
    assert round(auto["x_inner"], 2) == 92.4 and round(auto["x.grad"], 2) == -49008.96
    assert round(auto["d x_inner / dx"], 4) == 88.4
    assert panel.png.startswith(PNG) and panel.png != graph_false  # the graph gained a branch
    assert "-49008.96" in panel.text.value

    for create_graph in (True, False):
        panel.create_graph.value = create_graph
        panel.lr.value = 0.5
        x_inner, x_grad, x_after = by_hand(3.0, 0.5, create_graph)  # 114; −75240 or −1368
        auto, hand = panel.result["auto"], panel.result["hand"]
        assert auto["x_inner"] == pytest.approx(x_inner, rel=1e-6) == 114.0
        assert auto["x.grad"] == pytest.approx(x_grad, rel=1e-6)
        assert auto["x after the step"] == pytest.approx(x_after, rel=1e-6)
        assert (hand["x_inner"], hand["x.grad"]) == pytest.approx((x_inner, x_grad), rel=1e-12)
        assert str(round(x_grad, 2)) in panel.text.value
        panel.lr.value = 0.4
    assert by_hand(3.0, 0.5, True)[1] == pytest.approx(-75240.0)

    panel.x.value, panel.lr.value = -1.5, 0.1  # anywhere on the sliders, not only at the worked values
    x_inner, x_grad, _ = by_hand(-1.5, 0.1, False)
    assert panel.result["auto"]["x.grad"] == pytest.approx(x_grad, rel=1e-5)
    assert panel.result["hand"]["x.grad"] == pytest.approx(x_grad, rel=1e-12)


# ---------------------------------------------------------------- notebook 04

@pytest.fixture(scope="module")
def sine_models():
    torch.manual_seed(0)
    return SineMLP(), SineMLP()  # stand-ins for the trained networks: the widget only runs them


def test_sine_widget_with_no_inner_step_shows_the_unadapted_networks(sine_models):
    maml_model, pretrained = sine_models
    before = [weights(maml_model), weights(pretrained)]
    panel = widgets.sine_adaptation_widget(maml_model, pretrained, inner_lr=0.01)
    assert (panel.task.value, panel.k.value, panel.steps.value) == (2, 10, 1)
    assert panel.png.startswith(PNG)

    panel.steps.value = 0
    tasks = sample_sine_tasks(1, 10, seed=2, k_query=100)
    grid = torch.linspace(*X_RANGE, 200).unsqueeze(-1)
    for name, model in (("MAML", maml_model), ("pretrained", pretrained)):
        with torch.no_grad():
            assert np.array_equal(panel.result["fit"][name], model(grid).squeeze(-1).numpy())
            mse = F.mse_loss(model(tasks.query_x[0]), tasks.query_y[0]).item()
        assert panel.result["query_mse"][name] == pytest.approx(mse, rel=1e-6)

    panel.steps.value = 1  # one SGD step on the K support points moves the fit
    sx, sy, qx, qy = tasks.task(0)
    fast = adapt(maml_model, params_of(maml_model), sx, sy, 0.01, 1, create_graph=False,
                 loss_fn=F.mse_loss)
    with torch.no_grad():
        expected = torch.func.functional_call(maml_model, fast, (grid,)).squeeze(-1).numpy()
    assert np.allclose(panel.result["fit"]["MAML"], expected, atol=1e-6)
    assert not np.allclose(panel.result["fit"]["MAML"], maml_model(grid).detach().squeeze(-1).numpy())

    panel.task.value, panel.k.value = 7, 3  # another wave, fewer points
    amplitude, phase = sample_sine_tasks(1, 3, seed=7).classes[0]
    assert (panel.result["amplitude"], panel.result["phase"]) == (amplitude, phase)
    assert panel.lines[0].startswith("task 7:") and "3 support points" in panel.lines[0]
    assert unchanged(maml_model, before[0]) and unchanged(pretrained, before[1])


# ---------------------------------------------------------------- notebook 05

def predictions_after(model, task, inner_lr, steps, query_batch):
    support_x, support_y, query_x, query_y = task
    fast = adapt(model, params_of(model), support_x, support_y, inner_lr, steps, create_graph=False)
    with torch.no_grad():
        return forward_in_batches(model, fast, query_x, query_y, query_batch).argmax(1)


def check_task_widget(model, sampler, inner_lr, query_batch):
    before = weights(model)
    panel = widgets.omniglot_task_widget(model, sampler, inner_lr, steps=3, query_batch=query_batch)
    for seed in (0, 1):
        task = sampler.sample(1, seed=seed).task(0)
        assert panel.result["seed"] == seed and torch.equal(panel.result["labels"], task[3])
        for k in range(4):  # after 0, 1, 2, 3 inner steps
            expected = predictions_after(model, task, inner_lr, k, query_batch)
            assert torch.equal(panel.result["predictions"][k], expected), (seed, k)
            assert panel.result["accuracy"][k] == (expected == task[3]).float().mean().item()
        assert panel.png.startswith(PNG)
        panel.new_task.click()
    marks_after_3 = panel.png
    panel.shown.value = 0  # mark the predictions before adaptation instead
    assert panel.png != marks_after_3 and "after 0 steps" in panel.lines[-1]
    assert unchanged(model, before)  # test-time adaptation never writes into the model
    return panel


def test_omniglot_widget_on_a_tiny_network_and_synthetic_drawings():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(8, 20, 28, 28), dtype=np.uint8)
    sampler = TaskSampler(images, np.arange(8), ways=5, shots=1, queries=3)
    torch.manual_seed(0)
    check_task_widget(ConvNet(5, hidden=8), sampler, inner_lr=0.4, query_batch=1)


def test_omniglot_widget_with_the_committed_checkpoint(omniglot):
    from maml_helpers.checkpoint import load_model

    model, state = load_model(REPO / "checkpoints" / "5way1shot-so-seed0" / "model.pt")
    config = state["config"]
    sampler = TaskSampler(omniglot.images, omniglot.splits()["test"], 5, 1, 15)
    panel = check_task_widget(model, sampler, config["inner_lr"], config["queries"])
    accuracy = panel.result["accuracy"]  # task seed 2 (two clicks of "new task")
    assert accuracy[3] > 0.8 and accuracy[3] > accuracy[0] + 0.3
