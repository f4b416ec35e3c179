#!/usr/bin/env python3
"""Render the course notebooks, with their outputs, to a static website that reads offline.

    python tools/build_site.py --out build/site      (what `make site` runs)

OUT/index.html     the table of contents: each notebook's title (its first heading) and one
                   line on what it is about (the first sentence of its introduction);
OUT/NAME.html      one page per notebook in notebooks/ (however many there are), rendered with
                   nbconvert's HTMLExporter (JupyterLab look) from the committed outputs, with
                   a previous / contents / next bar at the top and bottom; solution cells are
                   folded into a <details> element ("Solution (click to show)");
OUT/...            any other local file a notebook links to (copied, same relative path).

Images that markdown cells show (`../images/*.png`) are embedded as data URIs, so each page
is one self-contained file. Links between notebooks (`NN_name.ipynb`) point to the pages
(`NN_name.html`), `../README.md` to index.html; a link to a notebook that does not exist yet
stays as plain text (with a warning).
Nothing is executed: the pages show the outputs committed in git (the ones CI checks).
Offline, everything but maths rendering works (MathJax and require.js come from a CDN, as
in any nbconvert page; formulas then show as their TeX source).

OUT is replaced on every run; a non-empty folder that this script did not create is refused.
"""
from __future__ import annotations

import argparse
import base64
import html
import mimetypes
import os
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
from jinja2 import DictLoader
from nbconvert import HTMLExporter
from nbconvert.filters import markdown2html

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cloud import TAG as CLOUD_TAG  # noqa: E402  (same folder; the Colab set-up cell's tag)
from student_copies import is_solution, notebook_paths, prepare_out  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MARKER = ".course-site"  # marks a folder this script made, so re-running may replace it

# A JupyterLab-style page (nbconvert's `lab` template) plus our navigation and folded solutions.
PAGE_TEMPLATE = r"""
{%- extends 'index.html.j2' -%}
{% block extra_css %}
<style type="text/css">
  nav.course-nav { display: flex; justify-content: space-between; gap: 1em; flex-wrap: wrap;
    font-family: var(--jp-ui-font-family, sans-serif); font-size: 14px; padding: 8px 12px;
    margin: 0 0 12px 0; border: 1px solid #ddd; border-radius: 4px; background: #f7f7f7; }
  nav.course-nav.bottom { margin: 12px 0 0 0; }
  nav.course-nav a { text-decoration: none; }
  nav.course-nav .disabled { color: #999; }
  details.course-solution { margin: 4px 0 4px 0; border-left: 3px solid #f0ad4e;
    padding-left: 6px; }
  details.course-solution > summary { cursor: pointer; font-family: var(--jp-ui-font-family,
    sans-serif); font-size: 14px; color: #8a5a00; padding: 4px 0 4px 70px; }
  a.course-missing-link { color: inherit; text-decoration: none; cursor: default; }
</style>
{% endblock extra_css %}
{%- block body_header -%}
{{ super() }}
<!--course-nav-top-->
{%- endblock body_header -%}
{% block body_footer %}
<!--course-nav-bottom-->
{{ super() }}
{% endblock body_footer %}
{% block any_cell %}
{%- if cell.metadata.get('course_solution') -%}
<details class="course-solution"><summary>Solution (click to show)</summary>
{{ super() }}
</details>
{%- else -%}
{{ super() }}
{%- endif -%}
{% endblock any_cell %}
"""

INDEX_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title}</title>
<style>
  body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 60em;
         margin: 2em auto; padding: 0 1em; line-height: 1.5; color: #222; }}
  h1 {{ font-size: 1.8em; margin-bottom: 0.2em; }}
  p.lead {{ color: #555; margin-top: 0; }}
  ol.toc {{ list-style: none; padding: 0; }}
  ol.toc li {{ margin: 0 0 1.1em 0; padding: 0.6em 0.9em; border: 1px solid #ddd;
               border-radius: 4px; }}
  ol.toc a {{ font-size: 1.15em; font-weight: 600; text-decoration: none; }}
  ol.toc p {{ margin: 0.3em 0 0 0; color: #444; }}
  code {{ background: #f3f3f3; padding: 0 0.2em; border-radius: 3px; }}
  footer {{ color: #777; font-size: 0.9em; margin-top: 2em; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="lead">{lead}</p>
<h2>Contents</h2>
<ol class="toc">
{items}
</ol>
<footer>Rendered from the notebooks with their committed outputs (the ones CI checks).
Solutions are folded: click <em>Solution</em> under an exercise to open it.</footer>
</body>
</html>
"""


# ---------------------------------------------------------------- reading the notebooks

def _inline_html(markdown: str) -> str:
    """One line of markdown as inline HTML (no surrounding <p>)."""
    rendered = markdown2html(markdown).strip()
    return re.sub(r"^<p>(.*)</p>$", r"\1", rendered, flags=re.S)


def _plain(markdown: str) -> str:
    """One line of markdown as plain text, for <title>."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return re.sub(r"[`*]", "", text).strip()


def title_and_goal(nb) -> tuple[str, str]:
    """The notebook's first heading, and the first sentence of the text that follows it."""
    title, paragraphs, found = "", [], False
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for block in re.split(r"\n\s*\n", cell.source):
            block = block.strip()
            if not found:
                m = re.match(r"#+\s+(.+)", block)
                if m:
                    title, found = m.group(1).strip(), True
                    rest = block[m.end():].strip()
                    if rest:
                        paragraphs.append(rest)
                continue
            paragraphs.append(block)
        if found and paragraphs:
            break
    goal = ""
    for block in paragraphs:
        if block.startswith("#") or ".ipynb" in block or block.startswith(("←", "[←", "|", "!")):
            continue  # a heading, the navigation line, a table or a picture: not a sentence
        text = " ".join(line.strip() for line in block.splitlines())
        m = re.search(r"[.!?](?=\s+[A-Z`*_(\[\"'])|[.!?]$", text)
        goal = text[: m.end()] if m else text
        if len(goal) > 320:
            goal = goal[:320].rsplit(" ", 1)[0] + " …"
        break
    return title, goal


# ---------------------------------------------------------------- links in the rendered pages

class _TagFinder(HTMLParser):
    """Records the start tags of a document (with their position) and their attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[tuple[int, int], str, str, list]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((self.getpos(), tag, self.get_starttag_text(), attrs))

    handle_startendtag = handle_starttag


def start_tags(document: str):
    """(offset, tag, raw start-tag text, attributes) for every start tag in ``document``."""
    finder = _TagFinder()
    finder.feed(document)
    finder.close()
    line_starts = [0]
    for m in re.finditer("\n", document):
        line_starts.append(m.end())
    for (line, col), tag, raw, attrs in finder.tags:
        yield line_starts[line - 1] + col, tag, raw, attrs


def is_external(url: str) -> bool:
    url = url.strip()
    return (not url or url.startswith(("#", "//")) or bool(urlsplit(url).scheme))


_ATTR = re.compile(r"""(\s)(href|src)(\s*=\s*)("[^"]*"|'[^']*'|[^\s"'>]+)""", re.I)


class SiteLinks:
    """Decides where a notebook's local links point to in the site, and copies what they need."""

    def __init__(self, site: Path, pages: dict[Path, str], source_dir: Path):
        self.site, self.pages, self.source_dir = site, pages, source_dir
        self.warnings: list[str] = []

    def target(self, tag: str, url: str) -> str | None:
        """The new URL for a local ``url`` (None: drop the link)."""
        parts = urlsplit(url)
        fragment = f"#{parts.fragment}" if parts.fragment else ""
        path = (self.source_dir / unquote(parts.path)).resolve()
        if path in self.pages:
            return self.pages[path] + fragment
        if path == (REPO / "README.md").resolve():
            return "index.html" + fragment
        if path.suffix == ".ipynb":
            self.warnings.append(f"{url}: that notebook does not exist (yet); left as plain text")
            return None
        try:
            relative = path.relative_to(REPO.resolve())
        except ValueError:
            self.warnings.append(f"{url}: outside the repository; left as plain text")
            return None
        if not path.is_file() or relative.parts[0] in {".git", ".venv", "build"}:
            self.warnings.append(f"{url}: not a file in the repository; left as plain text")
            return None
        mime = mimetypes.guess_type(path.name)[0] or ""
        if tag == "img" and mime.startswith("image/"):  # embed: the page stays self-contained
            return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
        copy = self.site / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
        return relative.as_posix() + fragment

    def rewrite(self, document: str) -> str:
        edits = []
        for offset, tag, raw, _ in start_tags(document):
            new_raw = _ATTR.sub(lambda m: self._attr(tag, m), raw)
            if new_raw != raw:
                edits.append((offset, raw, new_raw))
        for offset, raw, new_raw in reversed(edits):
            assert document[offset: offset + len(raw)] == raw
            document = document[:offset] + new_raw + document[offset + len(raw):]
        return document

    def _attr(self, tag: str, m: re.Match) -> str:
        value = m.group(4)
        url = html.unescape(value[1:-1] if value[0] in "\"'" else value)
        if is_external(url):
            return m.group(0)
        new = self.target(tag, url)
        if new is None:  # a dead link: keep the text, drop the address
            return f'{m.group(1)}class="course-missing-link" title="not available yet"' \
                if tag == "a" else f'{m.group(1)}data-missing-{m.group(2).lower()}="{html.escape(url)}"'
        return f'{m.group(1)}{m.group(2)}{m.group(3)}"{html.escape(new, quote=True)}"'


# ---------------------------------------------------------------- building

def nav_bar(entries, i: int, where: str) -> str:
    def link(j, label):
        if 0 <= j < len(entries):
            title = html.escape(_plain(entries[j]["title"]))
            return f'<a href="{entries[j]["page"]}" title="{title}">{label}</a>'
        return f'<span class="disabled">{label}</span>'

    return (f'<nav class="course-nav {where}">{link(i - 1, "← previous")}'
            f'<a href="index.html">contents</a>{link(i + 1, "next →")}</nav>')


def course_title() -> str:
    readme = REPO / "README.md"
    if readme.is_file():
        for line in readme.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return "Course notebooks"


def build_site(out: Path, source: Path = REPO / "notebooks", quiet: bool = False) -> list[Path]:
    """Render every notebook in ``source`` into ``out``; return the pages written (index first)."""
    out, source = Path(out), Path(source)
    prepare_out(out, MARKER, "tools/build_site.py")
    paths = notebook_paths(source)
    entries = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        title, goal = title_and_goal(nb)
        entries.append({"path": path, "nb": nb, "title": title or path.stem, "goal": goal,
                        "page": path.stem + ".html"})
    pages = {e["path"].resolve(): e["page"] for e in entries}

    exporter = HTMLExporter(template_name="lab", embed_images=True,
                            extra_loaders=[DictLoader({"course_page.html.j2": PAGE_TEMPLATE})],
                            template_file="course_page.html.j2")
    written = []
    for i, e in enumerate(entries):
        nb = e["nb"]
        # The Colab set-up cell (tools/cloud.py) does nothing outside Colab: not for reading.
        nb.cells = [c for c in nb.cells if CLOUD_TAG not in c.metadata.get("tags", [])]
        for cell in nb.cells:
            if is_solution(cell):
                cell.metadata["course_solution"] = True
        resources = {"metadata": {"name": _plain(e["title"]), "path": str(e["path"].parent)}}
        body, _ = exporter.from_notebook_node(nb, resources=resources)
        links = SiteLinks(out, pages, e["path"].parent.resolve())
        body = links.rewrite(body)  # before adding our own (site-relative) navigation
        for where in ("top", "bottom"):
            body = body.replace(f"<!--course-nav-{where}-->", nav_bar(entries, i, where), 1)
        if not quiet:
            for warning in dict.fromkeys(links.warnings):
                print(f"{e['path'].name}: {warning}", file=sys.stderr)
        page = out / e["page"]
        page.write_text(body, encoding="utf-8")
        written.append(page)

    items = "\n".join(
        f'<li><a href="{e["page"]}">{_inline_html(e["title"])}</a>'
        + (f"<p>{_inline_html(e['goal'])}</p>" if e["goal"] else "") + "</li>"
        for e in entries)
    lead = ("An executable course, from <code>backward()</code> versus "
            "<code>torch.autograd.grad</code> to second-order MAML. Every number on these pages "
            "was computed by the notebook and is checked in CI.")
    index = out / "index.html"
    index.write_text(INDEX_TEMPLATE.format(title=html.escape(course_title()), lead=lead,
                                           items=items), encoding="utf-8")
    return [index, *written]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "site",
                        help="folder to write (default: build/site)")
    parser.add_argument("--notebooks", type=Path, default=REPO / "notebooks",
                        help="folder with the course notebooks (default: notebooks/)")
    args = parser.parse_args(argv)
    pages = build_site(args.out, args.notebooks)
    for page in pages:
        print(f"{page}  ({os.path.getsize(page) // 1024} KiB)")
    print(f"open {(args.out / 'index.html').resolve().as_uri()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
