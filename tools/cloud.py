#!/usr/bin/env python3
"""Run the course in the cloud: Colab / Binder badges in the README, a Colab set-up cell atop
every notebook.

    python tools/cloud.py --repo https://github.com/OWNER/NAME [--branch main]
                              record where the course is published, then write both
                              (what `make badges REPO=...` runs)
    python tools/cloud.py     write both again from pyproject.toml (after adding a notebook)
    python tools/cloud.py --check
                              exit 1, naming what is stale, if the README or a notebook
                              does not match pyproject.toml (tests/test_cloud.py runs it)

The public address is kept in one place, pyproject.toml's `[tool.course]` table, so a fork
(an instructor's copy) gets badges that open the fork: set it once and re-run.

- README.md: between `<!-- cloud:start -->` and `<!-- cloud:end -->`, a Colab and a Binder badge
  (Binder: the whole course in JupyterLab, built by mybinder.org from binder/) and a Colab
  link for every notebook.
  Without an address the block says how to set one and shows no badge (a badge pointing
  nowhere would be worse than none).
- Every notebook's first cell (tagged `cloud-setup`, collapsed): Colab opens a notebook from
  GitHub without the rest of the repository, so on Colab only the cell clones the course and
  calls `maml_helpers.colab.finish_setup` (the packages Colab lacks at the versions
  requirements.txt pins, Graphviz's `dot`, the paths, the notebooks/ folder). Anywhere else
  (your machine, CI, Binder) it does nothing. The static site leaves it out; student copies keep it.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

import nbformat

from maml_helpers.files import atomic_write

sys.path.insert(0, str(Path(__file__).resolve().parent))
from student_copies import notebook_paths  # noqa: E402  (same folder)

REPO = Path(__file__).resolve().parents[1]
TAG = "cloud-setup"
START, END = "<!-- cloud:start -->", "<!-- cloud:end -->"
GITHUB = re.compile(r"https://github\.com/([A-Za-z0-9-]+)/([A-Za-z0-9._-]+?)(?:\.git)?/?")
# The first cell of every notebook. It stays short: the work is in maml_helpers/colab.py, which
# exists only once the course is cloned.
CELL = '''\
# @title Colab set-up (does nothing anywhere else)
# Google Colab opens this notebook without the rest of the course: fetch it, then what Colab lacks.
import sys
if "google.colab" in sys.modules:
    import os, subprocess
    REPO, BRANCH, COURSE = {repo}, {branch}, os.path.expanduser("~/maml-course")  # by tools/cloud.py
    if not REPO:
        raise RuntimeError("This copy of the course does not name the repository it is published in, so Colab "
                           "cannot fetch maml_helpers. Open the notebook from a published copy's Colab badge.")
    if not os.path.isdir(COURSE):
        subprocess.run(["git", "clone", "-q", "--depth=1", "-b", BRANCH, REPO, COURSE], check=True)
    if COURSE not in sys.path:
        sys.path.insert(0, COURSE)
    from maml_helpers.colab import finish_setup
    finish_setup(COURSE)'''
# Collapsed in JupyterLab (source_hidden) and shown as its title in Colab (cellView: form).
CELL_METADATA = {"tags": [TAG], "jupyter": {"source_hidden": True}, "cellView": "form"}


class CloudError(Exception):
    """A bad address or a pyproject.toml this tool cannot update; the message says what to do."""


# ---------------------------------------------------------------- the one setting

def parse_github(url: str) -> tuple[str, str]:
    """(owner, name) of a GitHub repository address; Colab opens notebooks only from GitHub."""
    m = GITHUB.fullmatch(url.strip())
    if not m:
        raise CloudError(f"{url!r} is not a GitHub repository address. Colab opens notebooks "
                         "only from GitHub; give it as https://github.com/OWNER/NAME.")
    return m.group(1), m.group(2)


def read_setting(root: Path = REPO) -> tuple[str, str]:
    """(repository address or "", branch) from pyproject.toml's [tool.course] table."""
    with open(root / "pyproject.toml", "rb") as f:
        course = tomllib.load(f).get("tool", {}).get("course", {})
    repo, branch = course.get("repository", ""), course.get("branch", "main")
    if repo:
        owner, name = parse_github(repo)
        repo = f"https://github.com/{owner}/{name}"
    return repo, branch


def write_setting(repo: str, branch: str, root: Path = REPO) -> None:
    """Record the address in pyproject.toml ([tool.course], replaced or appended)."""
    owner, name = parse_github(repo)
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", branch):
        raise CloudError(f"{branch!r} is not a branch name")
    path = root / "pyproject.toml"
    text = path.read_text(encoding="utf-8")
    table = ("[tool.course]\n# Where the course is published: tools/cloud.py makes the Colab "
             "and Binder links from it.\n"
             f'repository = "https://github.com/{owner}/{name}"\nbranch = "{branch}"\n')
    # The table runs from its header to the next header (or the end of the file).
    old = re.search(r"^\[tool\.course\]\n(?:(?!\[).*\n?)*", text, re.M)
    if old:
        rest = text[old.end():]
        text = text[:old.start()] + table + ("\n" if rest else "") + rest
    else:
        text = text.rstrip("\n") + "\n\n" + table
    tomllib.loads(text)  # never write a file that no longer parses
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


# ---------------------------------------------------------------- what gets written

def colab_url(repo: str, branch: str, notebook: str) -> str:
    owner, name = parse_github(repo)
    return f"https://colab.research.google.com/github/{owner}/{name}/blob/{branch}/notebooks/{notebook}"


def binder_url(repo: str, branch: str, notebook: str) -> str:
    owner, name = parse_github(repo)
    return f"https://mybinder.org/v2/gh/{owner}/{name}/{branch}?urlpath=lab/tree/notebooks/{notebook}"


def readme_block(repo: str, branch: str, notebooks: list[str]) -> str:
    if not repo:
        body = ("*Run it in the cloud:* the course is ready for Binder (`binder/`) and Google "
                "Colab (each notebook's first cell fetches the course there), but this copy does "
                "not name its public repository yet, so there are no badges. Publishing it? "
                "`make badges REPO=https://github.com/OWNER/NAME` adds them.")
    else:
        colab = " · ".join(f"[{nb[:2]}]({colab_url(repo, branch, nb)})" for nb in notebooks)
        body = (f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                f"({colab_url(repo, branch, notebooks[0])}) "
                f"[![Binder](https://mybinder.org/badge_logo.svg)]"
                f"({binder_url(repo, branch, notebooks[0])})  \n"
                "**Binder** opens the whole course in JupyterLab (CPU PyTorch; the first start "
                "takes a few minutes). **Colab** opens one notebook at a time, and its first cell "
                f"fetches the rest of the course: {colab}.")
    return f"{START}\n{body}\n{END}"


def cell_source(repo: str, branch: str) -> str:
    return CELL.format(repo=json.dumps(repo), branch=json.dumps(branch))


# ---------------------------------------------------------------- applying it

def updated_readme(text: str, block: str) -> str:
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise CloudError(f"README.md must hold one {START} ... {END} block "
                         "(after the introduction) for the badges to go in")
    return text[:text.index(START)] + block + text[text.index(END) + len(END):]


def updated_notebook(nb, source: str) -> bool:
    """Put ``source`` into the notebook's first cell (inserted if missing); True if it changed."""
    first = nb.cells[0] if nb.cells else None
    if first is not None and TAG in first.metadata.get("tags", []):
        metadata = {**first.metadata, **CELL_METADATA}
        if first.source == source and first.metadata == metadata:
            return False
        first.source, first.metadata = source, nbformat.from_dict(metadata)
        return True
    nb.cells.insert(0, nbformat.v4.new_code_cell(source, metadata=CELL_METADATA))
    return True


def sync(root: Path = REPO, check: bool = False) -> list[str]:
    """Write (or, with check, only list) what is stale; returns the paths concerned."""
    repo, branch = read_setting(root)
    notebooks = notebook_paths(root / "notebooks")
    source = cell_source(repo, branch)
    stale = []
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    new = updated_readme(text, readme_block(repo, branch, [p.name for p in notebooks]))
    if new != text:
        stale.append("README.md")
        if not check:
            atomic_write(readme, lambda f: f.write(new.encode("utf-8")))
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        if updated_notebook(nb, source):
            stale.append(str(path.relative_to(root)))
            if not check:
                nbformat.validate(nb)
                atomic_write(path, lambda f: f.write((nbformat.writes(nb) + "\n").encode("utf-8")))
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", help="the public GitHub address, https://github.com/OWNER/NAME")
    parser.add_argument("--branch", default=None, help="the branch the links open (default: main)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    parser.add_argument("--root", type=Path, default=REPO, help=argparse.SUPPRESS)  # tests
    args = parser.parse_args(argv)
    try:
        if args.check and (args.repo or args.branch):
            raise CloudError("--check compares with pyproject.toml; give --repo without --check")
        if args.repo or args.branch:
            current, branch = read_setting(args.root)
            write_setting(args.repo or current, args.branch or branch, args.root)
        stale = sync(args.root, check=args.check)
    except CloudError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    repo, branch = read_setting(args.root)
    if args.check:
        for path in stale:
            print(f"stale: {path} (run: python tools/cloud.py)", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        print(f"updated {path}")
    print(f"links open {repo} ({branch})" if repo else
          "no repository set: the README says how to add badges; notebooks have the Colab cell")
    return 0


if __name__ == "__main__":
    sys.exit(main())
