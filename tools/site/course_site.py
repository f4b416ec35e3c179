"""The course's own few lines for the Jupyter Book site (tools/site/_config.yml loads them).

- Every notebook is read through `read_notebook` (myst-nb's `nb_custom_formats` hook for .ipynb),
  which applies the course's conventions as Jupyter Book cell tags, on the copy being
  rendered (the notebooks in git are not changed):
    a solution cell (tools/student_copies.py: tagged `solution`, or starting `# Solution`)
        gets `hide-cell`: input and output folded into a <details> element whose summary
        reads "Solution (click to show)";
    the Colab set-up cell (tools/cloud.py, tagged `cloud-setup`) gets `remove-cell`: it does
        nothing outside Colab, so it is not for reading;
    a widget's output (maml_helpers/widgets.py) keeps only its plain text, which says to run
        the notebook, and the saved widget state goes: a page would need scripts from a CDN to
        draw it, and the site reads offline. The printed twin in the next cell shows the content.
- Pictures and files that raw HTML in a page points to (the README's `<p align="center"><img
  src="images/...">`, which MyST passes through as it is) are copied into the site at the same
  place, so they show; a raw-HTML link to another page of the site points to its HTML page.
- The Binder and Colab launch buttons, and the repository button, are made from the address in
  pyproject.toml's [tool.course] table (the one place tools/cloud.py keeps it). Without an
  address the pages have no such buttons (a button pointing nowhere would be worse than none).
"""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
from docutils import nodes
from sphinx.util.osutil import relative_uri

TOOLS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOOLS))
from cloud import TAG as CLOUD_TAG, read_setting  # noqa: E402  (tools/)
from student_copies import is_solution  # noqa: E402

SOLUTION_SHOW = "Solution (click to show)"
SOLUTION_HIDE = "Solution (click to hide)"


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def course_tags(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` with the Jupyter Book tags that show the course's conventions (changed in place)."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(WIDGET_VIEW, None)
        tags = cell.metadata.get("tags", [])
        if CLOUD_TAG in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
        elif is_solution(cell):
            cell.metadata["tags"] = [*tags, "hide-cell"]
            cell.metadata.setdefault("mystnb", {}).update(
                code_prompt_show=SOLUTION_SHOW, code_prompt_hide=SOLUTION_HIDE)
    return nb


def read_notebook(text: str) -> nbformat.NotebookNode:
    """myst-nb's reader for .ipynb files (as its own, plus `course_tags`)."""
    return course_tags(nbformat.reads(text, as_version=4))


def launch_options(repo: str, branch: str) -> dict:
    """sphinx-book-theme options for the repository and launch buttons ({} without an address)."""
    if not repo:
        return {"repository_url": "", "use_repository_button": False, "launch_buttons": {}}
    return {"repository_url": repo, "repository_branch": branch, "path_to_docs": "",
            "use_repository_button": True,
            "launch_buttons": {"binderhub_url": "https://mybinder.org",
                               "colab_url": "https://colab.research.google.com",
                               "notebook_interface": "jupyterlab"}}


_URL = re.compile(r"""(\s(?:src|href)\s*=\s*)(["'])([^"']*)\2""", re.I)
NEVER_COPIED = {".git", ".venv", "build"}


def _raw_html_links(app, doctree, docname) -> None:
    """Make the local URLs in a page's raw HTML work in the site (see the module docstring)."""
    srcdir = Path(app.srcdir).resolve()
    page_dir = (srcdir / docname).parent
    copies = app.env.__dict__.setdefault("course_raw_html_files", set())

    def fix(m: re.Match) -> str:
        url = m.group(3)
        parts = urlsplit(url)
        if parts.scheme or url.startswith(("#", "/")) or not parts.path:
            return m.group(0)
        target = (page_dir / unquote(parts.path)).resolve()
        if not target.is_relative_to(srcdir):
            return m.group(0)
        relative = target.relative_to(srcdir)
        doc = relative.with_suffix("").as_posix()
        if doc in app.env.found_docs:
            uri = relative_uri(app.builder.get_target_uri(docname), app.builder.get_target_uri(doc))
            fragment = f"#{parts.fragment}" if parts.fragment else ""
            return f"{m.group(1)}{m.group(2)}{uri}{fragment}{m.group(2)}"
        if target.is_file() and relative.parts[0] not in NEVER_COPIED:
            copies.add(relative.as_posix())
        return m.group(0)

    for node in list(doctree.findall(nodes.raw)):
        if "html" in node.get("format", "").split():
            text = _URL.sub(fix, node.astext())
            if text != node.astext():
                node.replace_self(nodes.raw("", text, format=node["format"]))


def _copy_raw_html_files(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        for relative in sorted(app.env.__dict__.get("course_raw_html_files", ())):
            target = Path(app.outdir) / relative
            if not target.exists():  # never over a file Sphinx wrote
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(app.srcdir) / relative, target)


def _config_inited(app, config) -> None:
    repo, branch = read_setting()
    config.html_theme_options = {**(config.html_theme_options or {}),
                                 **launch_options(repo, branch)}


def setup(app):
    app.connect("config-inited", _config_inited)
    app.connect("doctree-resolved", _raw_html_links)
    app.connect("build-finished", _copy_raw_html_files)
    # the files to copy are collected while pages are written: one writer only
    return {"parallel_read_safe": True, "parallel_write_safe": False}
