"""Widgets for the notebooks: move a slider, and the lesson's numbers and pictures follow.

Each builder is a thin layer over code the notebooks already run: functions the notebook defines
and passes in, or ``maml``, ``sinusoid``, ``plotting`` and ``graphs`` from this package. The
widget recomputes with that same code, so it shows what the cells would print.

Every builder returns a ``Panel`` (an ipywidgets ``VBox``):
- its controls are attributes: set ``panel.lr.value = 0.5`` (or ``panel.new_task.click()``) from
  Python, as a test does, or move them in JupyterLab;
- ``panel.result`` holds the numbers it shows now, recomputed on every change;
- ``panel.static()`` prints the same text and shows the same figure as ordinary cell output. The
  notebooks call it in the cell after the widget, so a page without a kernel (the static site,
  GitHub, a student copy before it runs) still shows the widget's content at its starting values.
"""
from __future__ import annotations

import html
import io
import math

import ipywidgets as widgets
import torch


class Panel(widgets.VBox):
    """Controls on top, then the text and the figure that ``update`` computes from them (the
    figure below the text, or beside it, ``figure_height`` pixels high)."""

    def __init__(self, rows, watched, update, figure: bool = False, beside: bool = False,
                 figure_height: int | None = None):
        self.text = widgets.HTML(layout=widgets.Layout(width="auto", flex="0 0 auto"))  # never wrapped
        self.figure, self.figure_height = None, figure_height
        shown = [self.text]
        if figure:
            size = {"height": f"{figure_height}px", "width": "auto"} if figure_height else {}
            self.figure = widgets.Image(format="png", layout=widgets.Layout(**size))
            shown = [widgets.HBox([self.text, self.figure])] if beside else [self.text, self.figure]
        super().__init__([*rows, *shown])
        self._update = update
        self.result, self.lines, self.png = {}, [], None
        for control in watched:
            control.observe(self.refresh, names="value")
        self.refresh()

    def refresh(self, change=None) -> None:
        """Recompute everything from the controls' current values."""
        self.result, self.lines, self.png = self._update()
        self.text.value = f"<pre>{html.escape(chr(10).join(self.lines))}</pre>"
        if self.figure is not None:
            self.figure.value = self.png

    def static(self) -> None:
        """The same text and figure as plain cell output (readable without a running kernel)."""
        print("\n".join(self.lines))
        if self.png is not None:
            from IPython.display import Image, display

            display(Image(self.png, height=self.figure_height))

    def __repr__(self) -> str:
        # The plain-text stand-in that a notebook stores beside the widget: it is what a page
        # that cannot draw widgets shows in its place.
        return "Interactive widget: run the notebook to use it (the next cell shows its starting values)"


def _png(fig) -> bytes:
    """The figure as PNG bytes, and the figure closed: left open, the inline backend would also
    draw it under whichever cell runs next."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _steps(n: int) -> str:
    return f"{n} step{'s' * (n != 1)}"


def _slider(value, low, high, step, description):
    # continuous_update=False: recompute when the handle is released, not at every pixel
    kind = widgets.IntSlider if isinstance(step, int) else widgets.FloatSlider
    return kind(value=value, min=low, max=high, step=step, description=description,
                continuous_update=False, style={"description_width": "initial"})


# ---------------------------------------------------------------- notebook 01

BACKWARD, GRAD = "y.backward()", "torch.autograd.grad(y, [x1, x2, x3])"


def call_order(leaves, f, calls) -> dict:
    """Sections 1 and 2 of notebook 01 with the calls chosen: fresh leaves, one graph y_i = f(...)
    per call, and ``x1.grad`` before and after each call (``backward()`` adds into it,
    ``autograd.grad`` returns its gradients and leaves it alone)."""
    x1, x2, x3 = leaves()
    graphs = [f(x1, x2, x3) for _ in calls]  # separate graphs on the same leaves, as y1 and y2

    def now():  # read x1.grad at once: the next backward() adds into this very tensor, in place
        return None if x1.grad is None else x1.grad.item()

    grads, returned = [now()], []
    for y, call in zip(graphs, calls):
        if call == BACKWARD:
            y.backward()
            returned.append(None)
        else:
            returned.append([g.item() for g in torch.autograd.grad(y, [x1, x2, x3])])
        grads.append(now())
    return {"calls": list(calls), "returned": returned, "x1.grad": grads}


def call_order_widget(leaves, f) -> Panel:
    """Two toggles choose how y1 and then y2 are differentiated; the panel shows x1.grad after
    each call (None -> 7200 -> 14400 for two backward() calls)."""
    first = widgets.ToggleButtons(options=[BACKWARD, GRAD], description="y1:")
    second = widgets.ToggleButtons(options=[BACKWARD, GRAD], description="y2:")

    def update():
        result = call_order(leaves, f, [first.value, second.value])
        lines = [f"{'before any call:':<46s} x1.grad = {result['x1.grad'][0]}"]
        for i, (call, grad, got) in enumerate(zip(result["calls"], result["x1.grad"][1:],
                                                  result["returned"]), start=1):
            name = call.replace("(y", f"(y{i}") if call == GRAD else f"y{i}.backward()"
            lines.append(f"{'after ' + name + ':':<46s} x1.grad = {grad}"
                         + ("" if got is None else f"   (returned {got})"))
        return result, lines, None

    panel = Panel([first, second], [first, second], update)
    panel.first, panel.second = first, second
    return panel


# ---------------------------------------------------------------- notebook 03

def inner_step(x0: float, lr: float, create_graph: bool) -> dict:
    """Sections 2 and 3 of notebook 03 as one function: x_inner = x.clone(), one step on the
    inner loss 2 − 2·x_inner⁴ (its gradient g taken with or without ``create_graph``), the outer
    loss 1 − 3·x_inner², its backward into x, and one SGD step of x."""
    x = torch.tensor(x0, requires_grad=True)
    opt = torch.optim.SGD([x], lr=lr)
    x_inner = x.clone()
    inner_loss = 2 - 2 * x_inner**4
    (g,) = torch.autograd.grad(inner_loss, x_inner, create_graph=create_graph)
    x_inner = 2 * x_inner - lr * g
    outer_loss = 1 - 3 * x_inner**2
    (d_inner_dx,) = torch.autograd.grad(x_inner, x, retain_graph=True)  # the factor x.grad gets
    outer_loss.backward()
    x_grad = x.grad.item()
    opt.step()
    return {"g": g.item(), "x_inner": x_inner.item(), "outer_loss": outer_loss.item(),
            "d x_inner / dx": d_inner_dx.item(), "x.grad": x_grad, "x after the step": x.item(),
            "outer": outer_loss, "x": x}


def inner_step_by_hand(x0: float, lr: float, create_graph: bool) -> dict:
    """The hand derivation of notebook 03, sections 2 and 3, at any x and lr."""
    g = -8 * x0**3
    x_inner = 2 * x0 - lr * g
    d_inner_dx = 2 + 24 * lr * x0**2 if create_graph else 2.0  # 2 − lr·H, H = −24x², only via g
    x_grad = -6 * x_inner * d_inner_dx
    return {"g": g, "x_inner": x_inner, "outer_loss": 1 - 3 * x_inner**2,
            "d x_inner / dx": d_inner_dx, "x.grad": x_grad, "x after the step": x0 - lr * x_grad}


FORMULAS = {"g": "-8·x³", "x_inner": "2·x - lr·g", "outer_loss": "1 - 3·x_inner²",
            "d x_inner / dx": ("2 (g is a constant)", "2 + 24·lr·x²"),  # without, with the graph
            "x.grad": "-6·x_inner·(d x_inner/dx)", "x after the step": "x - lr·x.grad"}


def inner_step_widget(x: float = 3.0, lr: float = 0.4, create_graph: bool = False) -> Panel:
    """Sliders for x and lr and a create_graph switch: autograd's numbers beside the hand
    formula's, and the graph of outer_loss (torchviz), redrawn on every change."""
    from maml_helpers.graphs import draw_graph

    x_w = _slider(x, -4.0, 4.0, 0.1, "x")
    lr_w = _slider(lr, 0.0, 1.0, 0.05, "lr")
    cg_w = widgets.Checkbox(value=create_graph, description="create_graph=True", indent=False)

    def update():
        auto = inner_step(x_w.value, lr_w.value, cg_w.value)
        hand = inner_step_by_hand(x_w.value, lr_w.value, cg_w.value)
        lines = [f"x = {x_w.value:g}, lr = {lr_w.value:g}, create_graph={cg_w.value}",
                 f"{'':<17s} {'autograd':>12s} {'by hand':>12s}  approx  hand formula"]
        for name, formula in FORMULAS.items():
            if isinstance(formula, tuple):
                formula = formula[cg_w.value]
            close = math.isclose(auto[name], hand[name], rel_tol=1e-5, abs_tol=1e-8)  # cmp's approx
            lines.append(f"{name:<17s} {round(auto[name], 2):>12} {round(hand[name], 2):>12}  "
                         f"{close!s:<6s}  {formula}")
        png = draw_graph(auto["outer"], params={"x": auto["x"]}).pipe(format="png")
        result = {"auto": {k: v for k, v in auto.items() if k not in ("outer", "x")}, "hand": hand}
        return result, lines, png

    panel = Panel([widgets.HBox([x_w, lr_w, cg_w])], [x_w, lr_w, cg_w], update, figure=True,
                  beside=True, figure_height=600)  # a tall graph: beside the table, scaled down
    panel.x, panel.lr, panel.create_graph = x_w, lr_w, cg_w
    return panel


# ---------------------------------------------------------------- notebook 04

def sine_adaptation_widget(maml_model, pretrained, inner_lr: float, task: int = 2, k: int = 10,
                           steps: int = 1) -> Panel:
    """A sine task (by seed), K support points and the number of inner steps: the MAML network's
    fit beside the pretrained one's (notebook 04's figure), and their query errors."""
    import matplotlib.pyplot as plt

    from maml_helpers import sinusoid

    task_w = _slider(task, 0, 49, 1, "task (seed)")
    k_w = _slider(k, 1, 20, 1, "K support points")
    steps_w = _slider(steps, 0, 10, 1, "inner steps")
    models = {"MAML": maml_model, "pretrained": pretrained}

    def update():
        n = steps_w.value
        tasks = sinusoid.sample_sine_tasks(1, k_w.value, seed=task_w.value, k_query=100)
        support_x, support_y, _, _ = tasks.task(0)
        grid = torch.linspace(*sinusoid.X_RANGE, 200).unsqueeze(-1)  # plot_sine_adaptation's grid
        amplitude, phase = tasks.classes[0]
        result = {"amplitude": float(amplitude), "phase": float(phase), "query_mse": {}, "fit": {}}
        fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
        for ax, (name, model) in zip(axes, models.items()):
            mse = sinusoid.adaptation_losses(model, tasks, inner_lr, n)[0, n].item()
            result["query_mse"][name] = mse
            result["fit"][name] = sinusoid.adapted_predictions(model, support_x, support_y, grid,
                                                               inner_lr, [n])[n]
            sinusoid.plot_sine_adaptation(ax, model, tasks, 0, inner_lr, steps=sorted({0, n}),
                                          title=f"{name}: query MSE {mse:.3f} after {_steps(n)}")
        fig.tight_layout()
        lines = [f"task {task_w.value}: amplitude {amplitude:.3f}, phase {phase:.3f}; "
                 f"{k_w.value} support points, 100 query points, inner lr {inner_lr}",
                 f"query MSE after {_steps(n)}: MAML {result['query_mse']['MAML']:.3f}, "
                 f"pretrained {result['query_mse']['pretrained']:.3f}"]
        return result, lines, _png(fig)

    panel = Panel([widgets.HBox([task_w, k_w, steps_w])], [task_w, k_w, steps_w], update, figure=True)
    panel.task, panel.k, panel.steps = task_w, k_w, steps_w
    return panel


# ---------------------------------------------------------------- notebook 05

def omniglot_task_widget(model, sampler, inner_lr: float, steps: int = 3, query_batch: int | None = 1,
                         seed: int = 0) -> Panel:
    """A "new task" button: one meta-test task from ``sampler`` (support and query drawings),
    the model's predictions after 0, 1, ..., ``steps`` inner steps, right ones green, wrong red.

    Adaptation as at test time: from leaf copies of the weights (the model is never written),
    no graph kept, the query drawings sent ``query_batch`` per class at a time."""
    from maml_helpers import maml, plotting

    seed_w = widgets.BoundedIntText(value=seed, min=0, max=10**9, description="task seed")
    new_task = widgets.Button(description="new task", icon="refresh")
    new_task.on_click(lambda _: setattr(seed_w, "value", seed_w.value + 1))  # seeded: repeatable
    shown = widgets.ToggleButtons(options=list(range(steps + 1)), value=steps,
                                  description="marks after steps:", style={"description_width": "initial"})

    def update():
        tasks = sampler.sample(1, seed=seed_w.value)
        support_x, support_y, query_x, query_y = tasks.task(0)
        fast, predictions = maml.detached_params(model), []
        for step in range(steps + 1):
            with torch.no_grad():
                logits = maml.forward_in_batches(model, fast, query_x, query_y, query_batch)
            predictions.append(logits.argmax(1))
            if step < steps:
                fast = maml.adapt(model, fast, support_x, support_y, inner_lr, 1, create_graph=False)
        accuracy = [(p == query_y).float().mean().item() for p in predictions]
        fig = plotting.plot_task(tasks, 0, predictions[shown.value])
        ways = int(support_y.max()) + 1
        lines = [f"task seed {seed_w.value}: {ways}-way {len(support_y) // ways}-shot, "
                 f"{len(query_y) // ways} query drawings per class (the first 5 of each are drawn)",
                 "query accuracy after " + ", ".join(f"{_steps(k)} {100 * a:.1f}%" for k, a in enumerate(accuracy)),
                 f"marked: the predictions after {_steps(shown.value)} (green right, red wrong)"]
        result = {"seed": seed_w.value, "labels": query_y, "predictions": predictions, "accuracy": accuracy}
        return result, lines, _png(fig)

    panel = Panel([widgets.HBox([new_task, seed_w]), shown], [seed_w, shown], update, figure=True)
    panel.new_task, panel.seed, panel.shown = new_task, seed_w, shown
    return panel
