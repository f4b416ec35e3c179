#!/usr/bin/env python3
"""Build the course's static website with Jupyter Book 1.x (Sphinx, myst-nb, sphinx-book-theme).

    python tools/build_site.py --out build/site      (what `make site` runs)

Its settings are in tools/site/:
  _config.yml     Jupyter Book's settings: notebooks are never executed (the pages show the
                  outputs committed in git, the ones CI checks); MathJax is served from the
                  site itself (sphinx-mathjax-offline), so formulas render offline too;
  _toc.yml        the pages in order: the README as the landing page, then every notebook in
                  notebooks/ (however many there are), in course order;
  course_site.py  the course's conventions: solution cells folded under "Solution (click to
                  show)", the Colab set-up cell left out, Binder and Colab launch buttons made
                  from the address in pyproject.toml ([tool.course]; none without one).

OUT/index.html leads to the README's page; every page has the sidebar with all the notebooks,
search, and each notebook's download (.ipynb) button. Pictures (images/ and the outputs'
PNGs) are copied into OUT/_images, so OUT can be copied anywhere and read offline.

Jupyter Book builds into a temporary folder; OUT is then replaced by its HTML. A non-empty OUT
that this script did not create is refused.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from student_copies import prepare_out  # noqa: E402  (same folder)

REPO = Path(__file__).resolve().parents[1]
SETTINGS = REPO / "tools" / "site"
MARKER = ".course-site"  # marks a folder this script made, so re-running may replace it
# jupyter-book's own command line, run by this Python (its script may not be on PATH).
JUPYTER_BOOK = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]


def build_site(out: Path, verbose: bool = False) -> int:
    """Build the site into ``out``; return jupyter-book's exit status (0: built)."""
    try:
        import jupyter_book  # noqa: F401
    except ImportError:
        print("error: Jupyter Book is not installed in this Python: run `make site`, which "
              "installs requirements-site.txt (or: pip install -c requirements.txt "
              "-r requirements-site.txt)", file=sys.stderr)
        return 1
    out = Path(out)
    prepare_out(out, MARKER, "tools/build_site.py")
    env = {**os.environ,  # course_site.py imports tools/cloud.py, which imports maml_helpers
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory(prefix="course-site-") as work:
        command = [*JUPYTER_BOOK, "build", str(REPO), "--all", "--path-output", work,
                   "--config", str(SETTINGS / "_config.yml"), "--toc", str(SETTINGS / "_toc.yml")]
        # Sphinx's progress (stdout) is shown only with --verbose or when the build fails (it
        # ends by pointing at the temporary folder); its warnings (stderr) always show.
        run = subprocess.run(command, cwd=REPO, env=env, text=True,
                             stdout=None if verbose else subprocess.PIPE)
        if run.returncode:
            print(run.stdout or "", file=sys.stderr)
            return run.returncode
        for item in (Path(work) / "_build" / "html").iterdir():
            shutil.move(str(item), str(out / item.name))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "site",
                        help="folder to write (default: build/site)")
    parser.add_argument("--verbose", action="store_true", help="show Sphinx's progress")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    status = build_site(args.out, verbose=args.verbose)
    if status == 0:
        print(f"built in {time.perf_counter() - start:.0f} s: open "
              f"{(args.out / 'index.html').resolve().as_uri()}")
    return status


if __name__ == "__main__":
    sys.exit(main())
