"""The static site (`make site`: tools/build_site.py, Jupyter Book with the settings in
tools/site/), checked in the HTML it writes: the README as the landing page, a page per notebook
(however many there are) with every committed output, the sidebar listing them in course order,
solutions folded, pictures copied in, maths and search served from the site itself, and the
launch buttons made from pyproject.toml's address."""
from __future__ import annotations

import base64
import hashlib
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from cloud import TAG as CLOUD_TAG, binder_url, colab_url, read_setting
from student_copies import is_solution, notebook_paths
from support import CHROMIUM, REPO, need_browser, unavailable

sys.path.insert(0, str(REPO / "tools" / "site"))
import build_site  # noqa: E402  (tools/site/build_site.py)

NOTEBOOKS = notebook_paths(REPO / "notebooks")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def by_name(path: Path) -> str:
    return path.stem


def page_of(site: Path, path: Path) -> Path:
    return site / "notebooks" / f"{path.stem}.html"


def solution_cells(nb) -> list:
    return [c for c in nb.cells if is_solution(c)]


def words(text: str) -> str:
    return " ".join(text.split())


class Page(HTMLParser):
    """What the tests look at in one page: its links, its sidebar, its visible text, and the
    text inside each folded <details> element (with its summary)."""

    def __init__(self, path: Path):
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str, str]] = []   # (tag, attribute, url)
        self.links: list[tuple[str, dict]] = []      # <link> elements: (rel, attributes)
        self.sidebar: list[str] = []                 # hrefs of the sidebar's top-level entries
        self.scripts: list[str] = []
        self.details: list[dict] = []                # {"classes", "summary", "text"}
        self.text: list[str] = []
        self._stack: list[str] = []
        self._in_nav = self._in_l1 = self._skip = 0
        self._open_details: list[dict] = []
        self._in_summary = 0
        self.feed(path.read_text(encoding="utf-8"))
        self.close()

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        for name in ("href", "src"):
            if name in a:
                self.urls.append((tag, name, a[name]))
        if tag == "link":
            self.links.append((a.get("rel", ""), a))
        if tag == "script":
            self._skip += 1
            if a.get("src"):
                self.scripts.append(a["src"])
        if tag == "style":
            self._skip += 1
        if tag == "nav" and "bd-docs-nav" in classes:
            self._in_nav = 1
        elif tag == "nav" and self._in_nav:
            self._in_nav += 1
        if self._in_nav and tag == "li" and "toctree-l1" in classes:
            self._in_l1 = True
        if self._in_nav and self._in_l1 and tag == "a":
            self.sidebar.append(a.get("href", ""))
            self._in_l1 = False
        if tag == "details":
            self._open_details.append({"classes": classes, "summary": "", "text": ""})
        if tag == "summary":
            self._in_summary += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1
        if tag == "nav" and self._in_nav:
            self._in_nav -= 1
        if tag == "details" and self._open_details:
            self.details.append(self._open_details.pop())
        if tag == "summary":
            self._in_summary -= 1

    def handle_data(self, data):
        if self._skip:
            return
        self.text.append(data)
        for d in self._open_details:
            d["summary" if self._in_summary else "text"] += data

    @property
    def visible_text(self) -> str:
        return words("".join(self.text))


def local_target(page: Path, url: str) -> Path | None:
    """The file a page-relative URL points to (None for an external URL or a fragment)."""
    parts = urlsplit(url)
    if parts.scheme or url.startswith(("#", "//")) or not url:
        return None
    return (page.parent / unquote(parts.path)).resolve()


def need_site_tools():
    try:
        import jupyter_book  # noqa: F401
    except ImportError:
        unavailable("Jupyter Book is not installed: pip install -c requirements.txt "
                    "-r requirements-site.txt (make test and make site do)")


@pytest.fixture(scope="module")
def course_site():
    need_site_tools()
    import course_site
    return course_site


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    need_site_tools()
    out = tmp_path_factory.mktemp("site") / "site"
    assert build_site.main(["--out", str(out)]) == 0  # what `make site` runs
    return out


# ---------------------------------------------------------------- the whole site

def test_the_landing_page_is_the_readme(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    assert re.search(r'http-equiv="Refresh" content="0; url=README.html"', index), index
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    title = re.search(r"^# (.+)$", readme, re.M).group(1).strip()
    page = Page(site / "README.html")
    assert title in page.visible_text
    # the README's own table of the notebooks links to their pages, not to .ipynb files
    for path in NOTEBOOKS:
        if f"notebooks/{path.name}" in readme:
            assert ("a", "href", f"notebooks/{path.stem}.html") in page.urls


def test_the_sidebar_lists_the_readme_then_every_notebook_in_order_on_every_page(site):
    expected = [site / "README.html"] + [page_of(site, p) for p in NOTEBOOKS]
    for page_path in expected:
        page = Page(page_path)
        listed = [(page_path if href == "#" else local_target(page_path, href))
                  for href in page.sidebar]
        assert listed == [p.resolve() for p in expected], page_path.name


def test_every_page_has_previous_and_next_in_course_order(site):
    order = [site / "README.html"] + [page_of(site, p) for p in NOTEBOOKS]
    for i, page_path in enumerate(order):
        links = {rel: local_target(page_path, a["href"]) for rel, a in Page(page_path).links
                 if rel in ("prev", "next")}
        assert links.get("prev") == (order[i - 1].resolve() if i else None), page_path.name
        assert links.get("next") == (order[i + 1].resolve() if i + 1 < len(order) else None)


def test_pages_link_only_to_files_that_exist_and_load_nothing_from_the_network(site):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts)
    assert len(pages) >= len(NOTEBOOKS) + 3  # index, README, search (and genindex)
    checked = 0
    for page_path in pages:
        page = Page(page_path)
        for tag, attribute, url in page.urls:
            target = local_target(page_path, url)
            if target is None:
                scheme = urlsplit(url).scheme
                assert scheme in ("", "http", "https", "data", "mailto"), url
                # what the browser loads by itself comes from the site (but for pictures the
                # README itself shows from the web: the Colab and Binder badges)
                if scheme in ("http", "https") and url not in readme:
                    assert tag not in ("script", "img", "iframe"), f"{page_path.name}: {url}"
                continue
            assert target.is_file(), f"{page_path.name}: <{tag} {attribute}={url!r}> is missing"
            assert target.is_relative_to(site.resolve()), f"{page_path.name}: {url} leaves the site"
            checked += 1
        assert not [s for s in page.scripts if urlsplit(s).scheme], page_path.name
        for rel, a in page.links:
            if rel == "stylesheet":
                assert not urlsplit(a["href"]).scheme, (page_path.name, a["href"])
    assert checked >= 10 * len(pages)


def test_maths_is_typeset_by_a_mathjax_inside_the_site(site):
    math_notebooks = [p for p in NOTEBOOKS
                      if any(c.cell_type == "markdown" and "$" in c.source
                             for c in nbformat.read(p, as_version=4).cells)]
    assert math_notebooks, "no notebook has a formula: nothing to check"
    for path in math_notebooks:
        page = page_of(site, path)
        scripts = [s for s in Page(page).scripts if "mathjax" in s.lower()]
        assert scripts and all(local_target(page, s).is_file() for s in scripts), scripts
        assert 'class="math' in page.read_text(encoding="utf-8")


def test_search_covers_every_page(site):
    assert (site / "search.html").is_file()
    index = (site / "searchindex.js").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        assert f'"notebooks/{path.stem}"' in index
    assert '"README"' in index


def test_launch_buttons_follow_the_address_in_pyproject(site):
    repo, branch = read_setting()
    for path in NOTEBOOKS:
        text = page_of(site, path).read_text(encoding="utf-8")
        if repo:
            assert colab_url(repo, branch, path.name) in text
            assert binder_url(repo, branch, path.name) in text
        else:  # no address: no button that points nowhere (nor to Jupyter Book's own repository)
            assert "colab.research.google.com" not in text and "mybinder.org" not in text
            assert "executablebooks/jupyter-book" not in text


def test_the_build_refuses_a_folder_it_did_not_make(tmp_path, site):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="not empty"):
        build_site.main(["--out", str(tmp_path)])
    assert (tmp_path / "precious.txt").read_text() == "keep me"


# ---------------------------------------------------------------- each notebook's page

@pytest.mark.parametrize("path", NOTEBOOKS, ids=by_name)
def test_notebook_page_shows_every_committed_output(path, site):
    nb = nbformat.read(path, as_version=4)
    page_path = page_of(site, path)
    page = Page(page_path)
    text = page.visible_text
    lines = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or CLOUD_TAG in cell.metadata.get("tags", []):
            continue
        for output in cell.outputs:
            if output.output_type == "stream":
                shown = output.text
            elif output.output_type == "error":
                shown = "\n".join(output.traceback)
            else:
                shown = "" if "image/png" in output.data else output.data.get("text/plain", "")
            for line in ANSI.sub("", shown).splitlines():
                if line.strip():
                    lines += 1
                    assert words(line) in text, f"{path.name}: output line {line!r} is missing"
    assert lines > 0
    # every PNG output is a picture on the page (same bytes)
    shown = {hashlib.sha256(local_target(page_path, url).read_bytes()).hexdigest()
             for tag, attribute, url in page.urls if tag == "img" and local_target(page_path, url)}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                png = base64.b64decode(output.data["image/png"])
                assert hashlib.sha256(png).hexdigest() in shown, f"{path.name}: a plot is missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=by_name)
def test_notebook_page_shows_the_pictures_its_text_links_to(path, site):
    nb = nbformat.read(path, as_version=4)
    page_path = page_of(site, path)
    shown = [local_target(page_path, url).read_bytes() for tag, _, url in Page(page_path).urls
             if tag == "img" and local_target(page_path, url)]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for url in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", cell.source):
                if not urlsplit(url).scheme:
                    assert (path.parent / url).read_bytes() in shown, f"{path.name}: {url}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=by_name)
def test_notebook_page_folds_every_solution_and_leaves_out_the_colab_cell(path, site):
    nb = nbformat.read(path, as_version=4)
    page_path = page_of(site, path)
    folded = [d for d in Page(page_path).details
              if "Solution (click to show)" in d["summary"]]
    solutions = solution_cells(nb)
    assert len(folded) == len(solutions)
    assert len(solutions) > 0 or not any("### Exercise" in c.source for c in nb.cells)
    for cell, details in zip(solutions, folded):
        assert "hide" in details["classes"]  # myst-nb's folded cell: closed until clicked
        code = [ln for ln in cell.source.splitlines() if ln.strip()]
        assert words("\n".join(code)) in words(details["text"])
        for output in cell.outputs:  # the solution's output is folded with it
            if output.output_type == "stream":
                assert words(ANSI.sub("", output.text)) in words(details["text"])
    # the Colab set-up cell (tools/cloud.py) is for running, not reading: the page leaves it out
    assert CLOUD_TAG in nb.cells[0].metadata.get("tags", [])
    assert "google.colab" not in page_path.read_text(encoding="utf-8")


# ---------------------------------------------------------------- in a browser, offline

def test_a_browser_offline_typesets_the_maths_and_opens_a_solution_on_click(site):
    """Chromium (Debian's, through Playwright) with every request off the disk refused."""
    need_browser()
    from playwright.sync_api import sync_playwright
    path = next(p for p in NOTEBOOKS
                if any("$" in c.source for c in nbformat.read(p, as_version=4).cells
                       if c.cell_type == "markdown") and solution_cells(nbformat.read(p, as_version=4)))
    refused = []

    def offline(route):
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.route("**/*", offline)
            page.goto(page_of(site, path).as_uri())
            page.wait_for_selector("mjx-container", timeout=30_000)  # MathJax typeset a formula
            solution = page.locator("details.hide", has_text="Solution (click to show)").first
            assert solution.get_attribute("open") is None
            code = solution.locator("div.cell_input")
            assert not code.is_visible()
            solution.locator("summary").click()
            code.wait_for(state="visible", timeout=10_000)
        finally:
            browser.close()
    assert refused == []


# ---------------------------------------------------------------- the course's conventions

def test_course_tags_fold_solutions_drop_the_colab_cell_and_widget_views_and_nothing_else(course_site):
    for path in NOTEBOOKS:
        original = nbformat.read(path, as_version=4)
        tagged = course_site.read_notebook(path.read_text(encoding="utf-8"))
        assert len(tagged.cells) == len(original.cells)
        for before, after in zip(original.cells, tagged.cells):
            added = set(after.metadata.get("tags", [])) - set(before.metadata.get("tags", []))
            if CLOUD_TAG in before.metadata.get("tags", []):
                assert added == {"remove-cell"}
            elif is_solution(before):
                assert added == {"hide-cell"}
                assert after.metadata["mystnb"]["code_prompt_show"] == "Solution (click to show)"
            else:
                assert added == set()
                without_widget_views = [{**o, "data": {k: v for k, v in o.get("data", {}).items()
                                                       if k != course_site.WIDGET_VIEW}} if "data" in o else o
                                        for o in before.get("outputs", [])]
                assert after.get("outputs", []) == without_widget_views
                assert {**after, "outputs": None} == {**before, "outputs": None}
    assert "widgets" not in tagged.metadata  # no widget state: the site reads offline
    untagged = nbformat.v4.new_code_cell("# Solution\nx = 1")  # the other way to mark one
    nb = course_site.course_tags(nbformat.v4.new_notebook(cells=[untagged]))
    assert nb.cells[0].metadata["tags"] == ["hide-cell"]


def test_launch_options_without_and_with_an_address(course_site):
    assert course_site.launch_options("", "main")["launch_buttons"] == {}
    assert course_site.launch_options("", "main")["repository_url"] == ""
    options = course_site.launch_options("https://github.com/OWNER/NAME", "teach")
    assert options["repository_url"] == "https://github.com/OWNER/NAME"
    assert options["repository_branch"] == "teach"
    assert options["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert options["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
