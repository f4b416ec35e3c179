"""The package's layers (CONTRIBUTING.md, "Layers"): each module imports only from its own layer
or the layers below it; the MAML core imports only torch, the model and the tasks; no command
imports another, and no notebook imports from a command."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from support import REPO

PACKAGE = REPO / "maml_helpers"

# Bottom to top. A new module must be placed here (the test says so), which is the point.
LAYERS = {
    "foundation": {"__init__", "errors", "files", "seeding", "checks", "timing", "colab"},
    "data and model": {"model", "omniglot", "setting", "tasks"},
    "MAML core": {"maml"},
    "speed": {"batched", "double_backward", "allocator"},
    "processes": {"distributed"},
    "library": {"checkpoint", "evaluation", "cli", "plotting", "graphs", "sinusoid", "widgets"},
    "commands": {"train", "evaluate", "bench"},
}
CORE_MAY_IMPORT = {"model", "tasks"}
COMMANDS = LAYERS["commands"]


def package_imports(source: str) -> set[str]:
    """The maml_helpers modules a module's source imports (relative or absolute, at any depth)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from .x import y
                found.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import x, y
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.split(".")[0] == "maml_helpers":
                parts = node.module.split(".")
                found.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("maml_helpers.") and a.name.count(".") >= 1)
    return found


def import_graph() -> dict[str, set[str]]:
    return {p.stem: package_imports(p.read_text()) for p in sorted(PACKAGE.glob("*.py"))}


def violations(graph: dict[str, set[str]]) -> list[str]:
    rank = {m: i for i, layer in enumerate(LAYERS.values()) for m in layer}
    found = [f"{m} is in no layer: add it to LAYERS in tests/test_layers.py and to CONTRIBUTING.md"
             for m in graph if m not in rank]
    for module, imports in graph.items():
        for dep in sorted(imports):
            if module in rank and dep in rank and rank[dep] > rank[module]:
                found.append(f"{module} ({layer_of(module)}) imports {dep}, which sits above it ({layer_of(dep)})")
            if module in COMMANDS and dep in COMMANDS:
                found.append(f"command {module} imports command {dep}: move what both need into the library")
            if module == "maml" and dep not in CORE_MAY_IMPORT:
                found.append(f"the MAML core imports {dep}; it may import only {sorted(CORE_MAY_IMPORT)}")
    return found


def layer_of(module: str) -> str:
    return next(name for name, layer in LAYERS.items() if module in layer)


def test_every_module_respects_the_layers():
    assert violations(import_graph()) == []


def test_the_rule_catches_each_kind_of_break():
    graph = import_graph()
    assert "batched" not in graph["maml"]
    broken = {**graph, "maml": graph["maml"] | {"batched"}, "evaluate": graph["evaluate"] | {"train"},
              "tasks": graph["tasks"] | {"checkpoint"}, "newthing": set()}
    found = "\n".join(violations(broken))
    for expected in ("maml (MAML core) imports batched", "the MAML core imports batched",
                     "command evaluate imports command train", "tasks (data and model) imports checkpoint",
                     "newthing is in no layer"):
        assert expected in found


def test_import_parser_sees_every_form():
    source = ("from . import double_backward, tasks\nfrom .maml import Params\n"
              "import maml_helpers.train\nfrom maml_helpers.evaluation import run_split\n"
              "from maml_helpers import bench\ndef f():\n    from .graphs import draw_graph\n")
    assert package_imports(source) == {"double_backward", "tasks", "maml", "train", "evaluation", "bench", "graphs"}


def notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("notebook", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebooks_do_not_import_from_commands(notebook):
    code = "\n".join(line for line in notebook_code(notebook).splitlines()
                     if not line.lstrip().startswith(("!", "%")))  # shell lines run the commands: fine
    used = {m for m in package_imports(code) if m in COMMANDS}
    assert not used, f"{notebook.name} imports the command module(s) {used}: import from the library instead"


def test_contributing_lists_the_same_layers():
    text = (REPO / "CONTRIBUTING.md").read_text()
    section = text[text.index("## Layers"):]
    for name, modules in LAYERS.items():
        line = next((l for l in section.splitlines() if l.startswith(f"| {name} |")), None)
        assert line is not None, f"CONTRIBUTING.md's layer table has no row '{name}'"
        listed = set(re.findall(r"`(\w+)`", line.split("|")[2]))
        assert listed == modules - {"__init__"}, (name, listed ^ (modules - {"__init__"}))
