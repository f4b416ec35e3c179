"""Autograd graphs: draw them with torchviz (PNG into images/) and describe them as text.

torchviz names nodes by memory address, so its pictures cannot be compared by a test;
``graph_lines`` gives the same structure as plain text that nbval can compare, and
``saved_tensor_bytes`` measures what a graph holds in memory.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def images_dir() -> Path:
    """The course's images/ folder (next to maml_helpers/ in a checkout)."""
    path = REPO_ROOT / "images"
    path.mkdir(exist_ok=True)
    return path


def draw_graph(output: torch.Tensor, params: dict[str, torch.Tensor] | None = None,
               name: str | None = None, directory: Path | None = None):
    """Return torchviz's graph of ``output``; if ``name`` is given also save it as ``<name>.png``.

    The PNG is rendered in a temporary folder and moved into place, so an interrupted
    render never leaves a half-written image behind.
    """
    import torchviz  # imported lazily: it needs Graphviz, which only graph cells use

    dot = torchviz.make_dot(output, params=params or {})
    if name is not None:
        target = Path(directory) if directory is not None else images_dir()
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target) as tmp:
            rendered = dot.render(filename=name, directory=tmp, format="png", cleanup=True)
            os.replace(rendered, target / f"{name}.png")
    return dot


def graph_lines(output: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> list[str]:
    """The backward graph of ``output`` as an indented tree of node names.

    Leaves (AccumulateGrad) show the parameter's name when ``params`` names it. A node reached
    a second time is marked '(shared)' instead of being expanded again: that is where two
    branches of the graph meet.
    """
    names = {id(t): n for n, t in (params or {}).items()}
    lines: list[str] = []
    seen: set[int] = set()

    def label(fn) -> str:
        text = type(fn).__name__
        variable = getattr(fn, "variable", None)
        if variable is not None and id(variable) in names:
            text += f" ({names[id(variable)]})"
        return text

    def walk(fn, depth: int) -> None:
        shared = id(fn) in seen
        lines.append("  " * depth + label(fn) + ("  (shared)" if shared else ""))
        if shared:
            return
        seen.add(id(fn))
        for child, _ in fn.next_functions:
            if child is not None:
                walk(child, depth + 1)

    if output.grad_fn is None:
        return ["(no graph: this tensor does not require grad)"]
    walk(output.grad_fn, 0)
    return lines


def print_graph(output: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> None:
    print("\n".join(graph_lines(output, params)))


def saved_tensor_bytes(output: torch.Tensor) -> int:
    """Bytes of the tensors that ``output``'s graph keeps for its backward pass.

    Walks the graph from ``output.grad_fn`` and adds up every tensor a node saved (its
    ``_saved_*`` attributes), counting shared memory once. This is the memory a backward
    from ``output`` still needs: e.g. what second-order MAML keeps for every inner step.
    """
    storages, seen, stack = {}, set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        for attr in dir(node):
            if not attr.startswith("_saved_"):
                continue
            try:
                value = getattr(node, attr)
            except RuntimeError:  # already freed by an earlier backward
                continue
            for t in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(t, torch.Tensor):
                    storage = t.untyped_storage()
                    storages[storage.data_ptr()] = storage.nbytes()
        stack.extend(fn for fn, _ in node.next_functions)
    return sum(storages.values())


def show_images_side_by_side(paths, titles, width: float = 12.0):
    """Show saved PNGs (e.g. two torchviz graphs) next to each other with matplotlib."""
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(paths), figsize=(width, width * 0.75))
    for ax, path, title in zip(axes, paths, titles):
        ax.imshow(mpimg.imread(path))
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    return fig
