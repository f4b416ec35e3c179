"""Running the course in the cloud (tools/cloud.py, binder/): the README's badges and the
Colab set-up cell atop every notebook come from the one address in pyproject.toml, and the
cell fetches the course on Colab and does nothing anywhere else."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

import cloud
from maml_helpers import colab
from student_copies import notebook_paths
from support import REPO, unavailable

NOTEBOOKS = notebook_paths(REPO / "notebooks")
PUBLISHED = "https://github.com/alice/maml-course"
REAL_RUN = subprocess.run  # the tests below replace subprocess.run while a cell runs


def course_copy(tmp_path: Path) -> Path:
    """The files tools/cloud.py reads and writes, copied so a test may change them."""
    root = tmp_path / "course"
    root.mkdir()
    for name in ("README.md", "pyproject.toml", "requirements.txt"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return root


def readme_links(root: Path) -> list[str]:
    """The targets of the badges (`[![alt](picture)](target)`) and links in the README's
    cloud block, in order."""
    text = (root / "README.md").read_text(encoding="utf-8")
    block = text[text.index(cloud.START):text.index(cloud.END)]
    badge = r"\[!\[[^\]]*\]\((https://[^)\s]+)\)\]\((https://[^)\s]+)\)"
    pictures = {"https://mybinder.org/badge_logo.svg",
                "https://colab.research.google.com/assets/colab-badge.svg"}
    assert {picture for picture, _ in re.findall(badge, block)} <= pictures
    return [m.group(2) or m.group(3) for m in
            re.finditer(badge + r"|\[[^\]!]*\]\((https://[^)\s]+)\)", block)]


# ---------------------------------------------------------------- what is committed

def test_readme_and_notebooks_match_the_address_in_pyproject(capsys):
    assert cloud.main(["--check"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_starts_with_the_colab_cell(path):
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "code" and cloud.TAG in first.metadata.get("tags", [])
    repo, branch = cloud.read_setting()
    assert first.source == cloud.cell_source(repo, branch)
    assert first.metadata["jupyter"]["source_hidden"] and first.metadata["cellView"] == "form"
    assert len(first.source.splitlines()) <= 16  # the first code a student sees stays short


def test_colab_installs_the_versions_requirements_pins():
    pins = colab.pins(REPO)
    assert pins["torchviz"] == "torchviz==0.0.3" and pins["PIL"].startswith("pillow==")
    assert "torch" not in pins  # Colab's own torch build is kept
    for line in (REPO / "requirements.txt").read_text().splitlines():
        name = line.split("==")[0].strip().lower()
        if name in colab.PACKAGES.values():
            assert line.split("#")[0].strip() in pins.values()


# ---------------------------------------------------------------- publishing a copy

def test_publishing_writes_badges_that_open_every_notebook(tmp_path, capsys):
    root = course_copy(tmp_path)
    before = {p.name: nbformat.read(p, as_version=4) for p in notebook_paths(root / "notebooks")}
    assert cloud.main(["--repo", PUBLISHED + ".git", "--root", str(root)]) == 0
    with open(root / "pyproject.toml", "rb") as f:
        assert tomllib.load(f)["tool"]["course"] == {"repository": PUBLISHED, "branch": "main"}

    links = readme_links(root)
    binder = [u for u in links if u.startswith("https://mybinder.org/")]
    colab = [u for u in links if u.startswith("https://colab.research.google.com/github/")]
    assert binder == [f"{PUBLISHED.replace('github.com', 'mybinder.org/v2/gh')}/main"
                      f"?urlpath=lab/tree/notebooks/{NOTEBOOKS[0].name}"]
    assert len(colab) == 1 + len(NOTEBOOKS)  # the badge opens 01, then one link each
    assert colab[0] == colab[1]
    for url, path in zip(colab[1:], NOTEBOOKS):
        prefix = "https://colab.research.google.com/github/alice/maml-course/blob/main/"
        assert url.startswith(prefix) and (REPO / url[len(prefix):]) == path

    for path in notebook_paths(root / "notebooks"):
        nb, old = nbformat.read(path, as_version=4), before[path.name]
        assert f'REPO, BRANCH, COURSE = "{PUBLISHED}", "main",' in nb.cells[0].source
        assert nb.cells[1:] == old.cells[1:]  # nothing else in the notebook changed
    assert cloud.main(["--check", "--root", str(root)]) == 0
    assert cloud.sync(root) == []  # a second run has nothing to do

    assert cloud.main(["--branch", "teaching", "--root", str(root)]) == 0
    assert all("/teaching" in u for u in readme_links(root))
    assert cloud.read_setting(root) == (PUBLISHED, "teaching")


def test_without_an_address_there_is_no_badge_and_the_readme_says_how(tmp_path):
    root = course_copy(tmp_path)
    text = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(re.sub(r"\[tool\.course\][^\[]*", "", text))
    cloud.sync(root)
    assert readme_links(root) == []
    assert "make badges REPO=https://github.com/OWNER/NAME" in (root / "README.md").read_text()


@pytest.mark.parametrize("url", ["https://gitlab.com/alice/maml-course", "https://github.com/alice",
                                 "github.com/alice/maml-course", "https://github.com/a/b/tree/x"])
def test_an_address_colab_cannot_open_is_refused_with_the_fix(url, tmp_path, capsys):
    root = course_copy(tmp_path)
    before = (root / "pyproject.toml").read_bytes()
    assert cloud.main(["--repo", url, "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "not a GitHub repository address" in err and "https://github.com/OWNER/NAME" in err
    assert (root / "pyproject.toml").read_bytes() == before  # nothing half-written


def test_check_names_what_is_stale(tmp_path, capsys):
    root = course_copy(tmp_path)
    readme = root / "README.md"
    readme.write_text(readme.read_text().replace(cloud.END, "edited by hand\n" + cloud.END))
    nb_path = notebook_paths(root / "notebooks")[0]
    nb = nbformat.read(nb_path, as_version=4)
    del nb.cells[0]
    nbformat.write(nb, nb_path)
    assert cloud.main(["--check", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "stale: README.md" in err and f"stale: notebooks/{nb_path.name}" in err
    assert cloud.main(["--root", str(root)]) == 0  # the fix the message names
    assert cloud.main(["--check", "--root", str(root)]) == 0


def test_a_readme_without_the_block_is_refused(tmp_path, capsys):
    root = course_copy(tmp_path)
    readme = root / "README.md"
    readme.write_text(readme.read_text().replace(cloud.START, ""))
    assert cloud.main(["--root", str(root)]) == 2
    assert "README.md must hold one" in capsys.readouterr().err


# ---------------------------------------------------------------- the Colab cell, run

class Recorder:
    """Stands in for subprocess.run: runs git for real, records everything else (pip, apt)."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, cmd, *args, **kwargs):
        self.calls.append(list(cmd))
        if cmd[0] == "git":
            return REAL_RUN(cmd, *args, **kwargs)
        return subprocess.CompletedProcess(cmd, 0)


@pytest.fixture
def kernel_state(monkeypatch, tmp_path):
    """Whatever the cell changes in this process is put back afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    recorder = Recorder()
    monkeypatch.setattr(subprocess, "run", recorder)
    return recorder


def published_course(tmp_path: Path) -> Path:
    """A tiny git repository shaped like the course, to clone instead of GitHub."""
    git = shutil.which("git")
    if git is None:
        unavailable("git is not installed: the Colab cell's clone is tested with it")
    origin = tmp_path / "origin"
    (origin / "maml_helpers").mkdir(parents=True)
    (origin / "notebooks").mkdir()
    (origin / "maml_helpers" / "__init__.py").write_text('WHERE = "the clone"\n')
    shutil.copy(REPO / "maml_helpers" / "colab.py", origin / "maml_helpers")  # what the cell calls
    shutil.copy(REPO / "requirements.txt", origin)
    (origin / "notebooks" / "01.ipynb").write_text("{}\n")
    quiet = {"check": True, "capture_output": True}
    REAL_RUN([git, "init", "-q", "-b", "main", str(origin)], **quiet)
    REAL_RUN([git, "-C", str(origin), "add", "."], **quiet)
    REAL_RUN([git, "-C", str(origin), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-q", "-m", "course"], **quiet)
    return origin


def test_the_colab_cell_does_nothing_outside_colab(kernel_state, monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    path_before = list(sys.path)
    exec(cloud.cell_source(PUBLISHED, "main"), {})
    assert kernel_state.calls == [] and os.getcwd() == str(tmp_path)
    assert sys.path == path_before and os.environ["PYTHONPATH"] == "/elsewhere"


def test_the_colab_cell_fetches_the_course_on_colab(kernel_state, monkeypatch, tmp_path):
    origin = published_course(tmp_path)
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # as if Colab lacked these two
                        lambda name, *a: None if name in ("torchviz", "higher") else real_find_spec(name, *a))
    monkeypatch.setattr(shutil, "which", lambda name, *a: None)  # and had no `dot`
    source = cloud.cell_source(origin.as_uri(), "main")

    exec(source, {})
    course = tmp_path / "home" / "maml-course"
    assert [c[:2] for c in kernel_state.calls] == [
        ["git", "clone"], [sys.executable, "-m"], ["apt-get", "update"], ["apt-get", "install"]]
    pip = kernel_state.calls[1]
    assert pip[2:5] == ["pip", "install", "-q"]
    assert pip[5:] == ["torchviz==0.0.3", colab.pins(REPO)["higher"]]
    assert os.getcwd() == str(course / "notebooks")
    assert sys.path[0] == str(course)
    assert os.environ["PYTHONPATH"] == os.pathsep.join([str(course), "/elsewhere"])
    # what a command started from the notebook imports (nb06 starts `python -m maml_helpers.bench`)
    probe = REAL_RUN([sys.executable, "-c", "import maml_helpers; print(maml_helpers.WHERE)"],
                     capture_output=True, text=True, cwd=tmp_path, check=True)
    assert probe.stdout.strip() == "the clone"

    kernel_state.calls.clear()
    exec(source, {})  # run again: no second clone, the path not added twice
    assert ["git", "clone"] not in [c[:2] for c in kernel_state.calls]
    assert sys.path.count(str(course)) == 1


def test_the_colab_cell_without_an_address_says_so(kernel_state, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    with pytest.raises(RuntimeError, match="does not name the repository it is published in"):
        exec(cloud.cell_source("", "main"), {})
    assert kernel_state.calls == []


# ---------------------------------------------------------------- Binder

def test_binder_builds_the_pinned_cpu_environment():
    binder = REPO / "binder"
    lines = [ln.strip() for ln in (binder / "requirements.txt").read_text().splitlines()]
    assert "-r ../requirements.txt" in lines  # the same pins as `make setup`
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert "graphviz" in (binder / "apt.txt").read_text().split()  # the `dot` program
    runtime = (binder / "runtime.txt").read_text().strip()
    assert runtime == "python-3.11"  # the Python CI tests with
    with open(REPO / "pyproject.toml", "rb") as f:
        assert tomllib.load(f)["project"]["requires-python"] == ">=3.11"
    post_build = binder / "postBuild"
    assert os.access(post_build, os.X_OK)
    assert "pip install --quiet --no-deps --no-build-isolation -e ." in post_build.read_text()
    assert "--no-deps --no-build-isolation -e ." in (REPO / "Makefile").read_text()
