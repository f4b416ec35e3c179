"""The markdown documentation: every relative link and picture resolves (files, and the
`#anchor` of a heading), external links are well-formed (not fetched: no network needed), the
README stays a five-minute read, and the reader-facing docs state what is true now (project
history, dates and tracker references belong in CHANGELOG.md only)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import cloud
from student_copies import notebook_paths
from support import REPO

README_MAX_WORDS = 1500
HISTORY_FILE = "CHANGELOG.md"


def documents() -> list[Path]:
    paths = [REPO / "README.md", REPO / "benchmarks" / "README.md", *sorted((REPO / "docs").glob("*.md")),
             REPO / "checkpoints" / "README.md", REPO / "CONTRIBUTING.md", REPO / HISTORY_FILE]
    return [p for p in paths if p.is_file()]


DOCS = documents()
READER_DOCS = [p for p in DOCS if p.name != HISTORY_FILE]


def ids(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


# ---------------------------------------------------------------- reading markdown

FENCE = re.compile(r"^ {0,3}(```|~~~)")


def prose_lines(text: str, code_spans: bool = False) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks; inline code spans blanked out unless
    ``code_spans`` (a heading's anchor keeps their text)."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line if code_spans else re.sub(r"(`+)(?:(?!\1).)+?\1", "``", line)))
    return lines


# `](target)`: inline links and pictures, also nested ones (a badge: [![alt](picture)](target)).
MD_LINK = re.compile(r"\]\(\s*<?([^()\s<>]+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
HTML_LINK = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.I)


def links(text: str) -> list[tuple[int, str]]:
    found = []
    for number, line in prose_lines(text):
        found += [(number, m.group(1)) for m in MD_LINK.finditer(line)]
        found += [(number, m.group(1)) for m in HTML_LINK.finditer(line)]
    return found


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its rendered text, lower case, punctuation dropped,
    spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and pictures: their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"(\*+|\b_+|_+\b)", "", text)  # emphasis markers
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every `#anchor` the document defines: headings (with GitHub's -1, -2 for repeats) and
    explicit HTML ids / names."""
    found, seen = set(), {}
    for _, line in prose_lines(text, code_spans=True):
        m = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = github_slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
    found |= set(re.findall(r"""<a\s[^>]*(?:id|name)\s*=\s*["']([^"']+)["']""", text, re.I))
    return found


def link_problems(path: Path, text: str | None = None, root: Path = REPO) -> list[str]:
    """Every link in ``path`` (or in ``text``, read as if it were ``path``) that does not resolve."""
    text = path.read_text(encoding="utf-8") if text is None else text
    problems = []
    for number, url in links(text):
        where = f"{path.relative_to(root).as_posix()}:{number}: {url}"
        parts = urlsplit(url)
        if parts.scheme in ("http", "https"):
            host = parts.hostname or ""
            if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", host) or " " in url:
                problems.append(f"{where}: not a well-formed web address")
            continue
        if parts.scheme == "mailto":
            continue
        if parts.scheme or parts.netloc:
            problems.append(f"{where}: use a relative path or an http(s) address")
            continue
        if not parts.path:  # #anchor in this file
            if unquote(parts.fragment) not in anchors(text):
                problems.append(f"{where}: no heading in this file has that anchor")
            continue
        target = (path.parent / unquote(parts.path)).resolve()
        if not target.is_relative_to(root.resolve()):
            problems.append(f"{where}: points outside the repository")
        elif not target.exists():
            problems.append(f"{where}: no such file or folder")
        elif parts.fragment and target.suffix == ".md":
            if unquote(parts.fragment) not in anchors(target.read_text(encoding="utf-8")):
                problems.append(f"{where}: {target.relative_to(root.resolve()).as_posix()} "
                                "has no heading with that anchor")
    return problems


# What a reader cannot follow or check: tracker references, work sessions, dated history and
# phrases that only make sense against an earlier state of the project.
MONTH = (r"(?:January|February|March|April|May|June|July|August|September|October|November"
         r"|December)")
HISTORY = [
    (re.compile(r"\bissues?\b", re.I), "a tracker reference"),
    (re.compile(r"\b(?:sessions?|sittings?)\b", re.I), "a work session"),
    (re.compile(rf"\b\d{{1,2}}\s+{MONTH}\s+\d{{4}}\b|\b{MONTH}\s+\d{{1,2}},?\s+\d{{4}}\b"), "a date"),
    (re.compile(rf"\b(?:until|since|as of|before|after)\s+(?:\d{{1,2}}\s+)?{MONTH}\b", re.I), "a date"),
    (re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b"), "a date"),
    (re.compile(r"previous engine|shared with development|protocol of the time|our first evaluations?"
                r"|we changed|the only engine then", re.I), "project history"),
]


def shown(path: Path) -> str:
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.name


def history_problems(path: Path, text: str | None = None) -> list[str]:
    text = path.read_text(encoding="utf-8") if text is None else text
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, what in HISTORY:
            for m in pattern.finditer(line):
                problems.append(f"{shown(path)}:{number}: {m.group(0)!r} is {what}: state what is "
                                f"true now (history goes to {HISTORY_FILE})")
    return problems


def word_count(text: str) -> int:
    """As `wc -w` counts: runs of characters between ASCII white space, code blocks included."""
    return len(re.findall(r"[^ \t\n\r\f\v]+", text))


# ---------------------------------------------------------------- the committed docs

def test_the_documents_are_all_there():
    names = {ids(p) for p in DOCS}
    assert {"README.md", "benchmarks/README.md", "checkpoints/README.md", "CONTRIBUTING.md",
            "CHANGELOG.md", "docs/teaching.md"} <= names


@pytest.mark.parametrize("path", DOCS, ids=ids)
def test_every_link_and_picture_resolves(path):
    problems = link_problems(path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", READER_DOCS, ids=ids)
def test_reader_docs_state_the_present(path):
    problems = history_problems(path)
    assert not problems, "\n".join(problems)


def test_readme_is_a_five_minute_read():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert word_count(text) <= README_MAX_WORDS, (
        f"README.md has {word_count(text)} words (at most {README_MAX_WORDS}): move detail to "
        "docs/, benchmarks/README.md or checkpoints/README.md and link to it")
    # ... also once `make badges` has written the published cloud block
    notebooks = [p.name for p in notebook_paths(REPO / "notebooks")]
    block = cloud.readme_block("https://github.com/OWNER/NAME", "main", notebooks)
    published = cloud.updated_readme(text, block)
    assert word_count(published) <= README_MAX_WORDS, f"published README.md: {word_count(published)} words"


def test_readme_example_output_is_a_committed_checkpoints_evaluation():
    """The README shows what `evaluate` prints for a committed checkpoint: the figures must be
    that checkpoint's evaluation.json, in evaluate.py's format."""
    import json
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"maml_helpers\.evaluate (checkpoints/[^/\s]+)/model\.pt --tasks (\d+)", text)
    assert m, "the README shows no `evaluate` of a committed checkpoint"
    result = json.loads((REPO / m.group(1) / "evaluation.json").read_text())
    assert int(m.group(2)) == result["tasks"]
    line = f"accuracy: {result['accuracy']:.2f} ± {result['ci95']:.2f} % ({result['tasks']} tasks)"
    assert line in text
    assert re.search(rf"setting: {result['ways']}-way {result['shots']}-shot, {result['arch']} net, ", text)


NUMBER_WORDS = dict(enumerate(("no one two three four five six seven eight nine ten eleven twelve thirteen "
                                "fourteen fifteen sixteen seventeen eighteen nineteen twenty").split()))


def test_checkpoint_figures_are_the_committed_evaluations():
    """checkpoints/README's summary gives every committed checkpoint's meta-test figure as its
    evaluation.json records it, and the README counts the checkpoints right."""
    summary = (REPO / "checkpoints" / "README.md").read_text(encoding="utf-8").splitlines()
    records = sorted((REPO / "checkpoints").glob("*/evaluation.json"))
    for path in records:
        name, result = path.parent.name, json.loads(path.read_text())
        row = next((line for line in summary if line.startswith(f"| `{name}` |")), None)
        assert row, f"checkpoints/README.md's summary has no row for {name}"
        figure = f"**{result['accuracy']:.2f} ± {result['ci95']:.2f} %**"
        assert figure in row, f"{name}: the summary should say {figure}: {row}"
    count = re.search(r"(\w+) trained models", (REPO / "README.md").read_text(encoding="utf-8"))
    assert count and count.group(1) == NUMBER_WORDS[len(records)], (count and count.group(0), len(records))


def test_inner_steps_table_is_the_committed_run():
    """benchmarks/README's table of seconds against inner steps is inner_steps.txt's run, row
    for row, and the per-step figures quoted beside it are that run's."""
    out = (REPO / "benchmarks" / "inner_steps.txt").read_text(encoding="utf-8")
    doc = (REPO / "benchmarks" / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x$", out, re.M)
    assert [r[0] for r in rows] == ["1", "2", "3", "5"], out
    for steps, so, fo, hi, ratio in rows:
        assert f"| {steps} | {so} s | {fo} s | {hi} s | {ratio}× |" in doc, steps
    per_step = re.search(r"batched 2nd ([\d.]+), batched 1st ([\d.]+), higher 2nd ([\d.]+)", out)
    assert per_step, out
    so, fo, hi = (float(v) for v in per_step.groups())
    assert f"{so:.2f} s in second\n  order, {fo:.2f} s in first order and {hi:.2f} s in `higher`" in doc
    assert f"{so / fo:.1f} times" in doc

# ---------------------------------------------------------------- the checker has teeth

def test_the_checker_catches_what_it_should(tmp_path):
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "images").mkdir()
    (root / "images" / "a.png").write_bytes(b"png")
    (root / "docs" / "b.md").write_text("# Some page\n\n## The `make` commands, in short\n")
    doc = root / "README.md"
    good = ("# Title\n\n## A section: here\n\n![a](images/a.png) [b](docs/b.md) "
            "[c](docs/b.md#the-make-commands-in-short) [d](#a-section-here) [e](docs/) "
            '<img src="images/a.png"> [w](https://example.org/x?y=1#z)\n'
            "```\n[in code](nowhere.md)\n# not a heading\n```\n`[in a code span](nowhere.md)`\n")
    assert link_problems(doc, good, root) == []
    for broken in ["[x](images/b.png)", "[x](docs/b.md#no-such-heading)", "[x](#not-a-heading)",
                   '<img src="images/missing.png">', "[x](../outside.md)", "[x](https:/example.org/x)",
                   "[x](http://localhost:8888)", "[x](ftp://example.org/f)", "[![b](images/a.png)](gone.md)"]:
        problems = link_problems(doc, good + broken + "\n", root)
        assert len(problems) == 1, (broken, problems)
    for bad in ["See issue 12.", "in the GPU session", "longer than one sitting", "Until 3 December 2026 the run",
                "on 2026-11-26", "until March", "with the previous engine"]:
        assert history_problems(doc, f"Fine text.\n{bad}\n"), bad
    assert history_problems(doc, "Tissues and obsessions; sessionless; babysitting.\n") == []
    assert (github_slug("5way1shot-so-seed0: 5-way 1-shot, second order")
            == "5way1shot-so-seed0-5-way-1-shot-second-order")
    assert anchors("# A\n## A\n") == {"a", "a-1"}
    assert word_count("one two\n```\nthree\n```\n") == 5  # as wc -w: fences too


NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_text_states_the_present(path):
    """The notebooks' prose follows the same rule as the docs (code and outputs are not prose)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    problems = history_problems(path, text) + [
        f"{shown(path)}: a note on the project's honesty is history: state the protocol instead"
        for _ in re.finditer(r"note on honesty", text, re.I)]
    assert not problems, "\n".join(problems)
