"""JupyterLab in a real browser: start JupyterLab as `make lab` does (tools/lab.py), open
notebook 01 in Debian's Chromium (driven by Playwright), Run All Cells, and see the worked
values appear; open notebook 03, Run All Cells, flip its widget's create_graph switch and move
its lr slider, and see the widget recompute x.grad.

Leaves screenshots in build/artifacts/ (jupyterlab_01.png, jupyterlab_03_widget.png). Needs
/usr/bin/chromium (Debian package `chromium`; .ci/run installs it): without it the test is
skipped locally and fails in CI (CI=true). Playwright's own browser downloads are never used.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from support import CHROMIUM, REPO, end_process_group, fetch, free_port, need_browser

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
NOTEBOOK = "01_backward_vs_autograd_grad.ipynb"
EXPECTED = ["7200", "14400"]  # x1.grad after one and after two backward() calls (section 1)
SCREENSHOT = REPO / "build" / "artifacts" / "jupyterlab_01.png"
WIDGET_NOTEBOOK = "03_clone_and_create_graph.ipynb"
WIDGET_SCREENSHOT = REPO / "build" / "artifacts" / "jupyterlab_03_widget.png"

# JupyterLab user settings for the test: render every cell (no windowing, so all outputs are in
# the page) and do not ask about news or updates (a toast would cover the screenshot).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
}


def processes_mentioning(text: str) -> list[int]:
    """Process ids whose command line contains ``text`` (used with our private runtime folder)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server of this environment on a random port with a random token, serving a
    temporary copy of the course (outputs cleared: every number on the page comes from this run,
    and the repository's notebook is never autosaved). Always stopped, with its kernels."""
    need_browser()

    root = tmp_path_factory.mktemp("lab")
    course = root / "course"
    (course / "notebooks").mkdir(parents=True)
    shutil.copytree(REPO / "images", course / "images")
    for name in (NOTEBOOK, WIDGET_NOTEBOOK):
        nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nb.metadata.pop("widgets", None)  # saved widget state is output too
        nbformat.write(nb, course / "notebooks" / name)
    for name, values in LAB_SETTINGS.items():
        path = root / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    runtime = root / "runtime"  # connection files; kernels name it on their command line

    port, token = free_port(), secrets.token_hex(24)
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ,
           "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
           "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"),
           "JUPYTER_CONFIG_DIR": str(root / "config"),
           "JUPYTER_RUNTIME_DIR": str(runtime),
           "OMP_NUM_THREADS": "1"}
    # The command `make lab` runs (tools/lab.py: --allow-root for root, --no-browser without a
    # display), with the test's own port, token, folder and page hooks added.
    cmd = [sys.executable, str(REPO / "tools" / "lab.py"), "--notebooks", str(course / "notebooks"),
           "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
           f"--IdentityProvider.token={token}",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.expose_app_in_browser=True"]  # window.jupyterapp: see when cells have run
    log_path = root / "jupyter.log"
    log = open(log_path, "w")
    server = subprocess.Popen(cmd, cwd=course, env=env, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        try:  # a starting server refuses connections: fetch tries again while it runs
            fetch(f"{base}/api/status?token={token}", server, seconds=90).close()
        except OSError as error:
            pytest.fail(f"jupyter lab did not answer ({error}); exit code {server.poll()}:\n"
                        f"{log_path.read_text()}")
        yield {"base": base, "token": token, "log": log_path, "runtime": str(runtime)}
    finally:
        stop_server(server, base, token, str(runtime))
        log.close()


def stop_server(server: subprocess.Popen, base: str, token: str, runtime: str) -> None:
    """Ask the server to shut down (it stops its kernels), then terminate its process group;
    kernels run in their own sessions, so any left are found by our private runtime folder."""
    if server.poll() is None:
        try:
            fetch(f"{base}/api/shutdown?token={token}", server, method="POST", seconds=0, timeout=5).close()
            server.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):  # URLError is an OSError
            pass
    end_process_group(server, waits=(10, 5))
    for pid in processes_mentioning(runtime):  # orphaned kernels of this server, if any
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# JavaScript run in the page, through the app handle that --LabApp.expose_app_in_browser gives
# (the current widget must be the notebook asked for: JupyterLab also reopens the notebooks of
# an earlier test in this server, and one of them may be current for a moment)
NOTEBOOK_READY = """(name) => {
    const app = window.jupyterapp, panel = app && app.shell.currentWidget;
    const kernel = panel && panel.context && panel.context.path === name && panel.sessionContext
        && panel.sessionContext.session && panel.sessionContext.session.kernel;
    return !!(kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle'
        && app.commands.isEnabled('notebook:run-all-cells'));
}"""
ALL_CELLS_RAN = """(name) => {
    const panel = window.jupyterapp.shell.currentWidget;
    const session = panel.context.path === name && panel.sessionContext.session;
    const cells = [...panel.content.model.cells].filter(c => c.type === 'code');
    return !!(session && session.kernel && session.kernel.status === 'idle')
        && cells.length > 0 && cells.every(c => c.executionCount !== null);
}"""
ERRORS = """() => {
    const errors = [];
    for (const cell of window.jupyterapp.shell.currentWidget.content.model.cells) {
        for (let i = 0; cell.type === 'code' && i < cell.outputs.length; i++) {
            const output = cell.outputs.get(i).toJSON();
            if (output.output_type === 'error') errors.push(output.ename + ': ' + output.evalue);
        }
    }
    return errors;
}"""


def run_all_cells(page, lab, notebook: str) -> list[str]:
    """Open ``notebook``, Run All Cells from the menu, wait until every code cell has run, and
    return the texts of its outputs. Only the cells that raise on purpose may show an error."""
    page.set_default_timeout(90_000)
    page.goto(f"{lab['base']}/lab/tree/{notebook}?token={lab['token']}")
    page.locator(".jp-NotebookPanel .jp-CodeCell").first.wait_for()
    # the notebook is the current widget, its kernel is connected and idle, and
    # "Run All Cells" is enabled (clicking it any earlier does nothing)
    page.wait_for_function(NOTEBOOK_READY, arg=notebook, polling=250)

    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator("li.lm-Menu-item:not(.lm-mod-disabled)",
                 has_text=re.compile(r"^Run All Cells")).click()

    page.wait_for_function(ALL_CELLS_RAN, arg=notebook, polling=250)
    nb = nbformat.read(REPO / "notebooks" / notebook, as_version=4)
    raising = sum("raises-exception" in c.metadata.get("tags", []) for c in nb.cells)
    errors = page.evaluate(ERRORS)  # the error outputs (a printed message is no error)
    assert len(errors) == raising, errors  # only the cells that raise on purpose
    assert not [e for e in errors if e.startswith(("ModuleNotFoundError", "ImportError"))]
    return page.locator(".jp-NotebookPanel .jp-OutputArea-output").all_inner_texts()


def report_failure(page, screenshot: Path, lab) -> None:
    page.screenshot(path=str(screenshot))  # what the page showed when it failed
    print(f"screenshot of the failure: {screenshot}\nserver log: {lab['log']}")
    prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt")
    print("prompts:", [t.strip() for t in prompts.all_text_contents()])
    for text in page.locator(".jp-NotebookPanel .jp-OutputArea-output").all_inner_texts():
        print("output:", text[:300])


@contextlib.contextmanager
def chromium_page(lab, screenshot: Path, height: int):
    """A page of Debian's Chromium; on a failure, a screenshot and what the page showed."""
    from playwright.sync_api import sync_playwright

    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": height})
        try:
            yield page
        except Exception:
            report_failure(page, screenshot, lab)
            raise
        finally:
            browser.close()


def test_run_all_cells_of_notebook_01_in_jupyterlab(lab):
    with chromium_page(lab, SCREENSHOT, height=900) as page:
        outputs = run_all_cells(page, lab, NOTEBOOK)
        text = "\n".join(outputs)
        # the worked values, in the outputs (the markdown mentions them too)
        assert "before any backward:   x1.grad = None" in text
        for value in EXPECTED:
            assert f"x1.grad = {value}.0" in text, value

        # the kernel that ran them is this environment's Python (where maml_helpers is)
        kernels = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                   for pid in processes_mentioning(lab["runtime"] + "/kernel-")]
        assert kernels, "no kernel process of this server found"
        for argv in kernels:
            assert Path(argv[0].decode()).parent == Path(sys.executable).parent, argv

        page.locator(".jp-OutputArea-output", has_text="14400").first.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


def test_widget_of_notebook_03_recomputes_in_jupyterlab(lab):
    """The widget runs in the page: flipping create_graph and moving the lr slider (with the
    keyboard, one 0.05 step per key) make the kernel recompute x.grad, and the page shows it."""
    from playwright.sync_api import expect

    with chromium_page(lab, WIDGET_SCREENSHOT, height=1000) as page:
        run_all_cells(page, lab, WIDGET_NOTEBOOK)
        widget = page.locator(".jp-OutputArea-output .widget-vbox",
                              has=page.locator(".widget-checkbox"))
        table = widget.locator(".widget-html-content pre")
        graph = widget.locator(".widget-image")

        def shows(text):  # the kernel recomputes (and redraws the graph): allow a loaded machine
            expect(table).to_contain_text(text, timeout=60_000)

        shows("x = 3, lr = 0.4, create_graph=False")
        shows("-1108.8")  # section 2's x.grad
        graph_before = graph.get_attribute("src")

        widget.locator(".widget-checkbox input").click()
        shows("create_graph=True")
        shows("-49008.96")  # section 3's x.grad
        assert graph.get_attribute("src") != graph_before  # the graph was redrawn

        lr = widget.locator(".widget-slider", has=page.locator("label", has_text=re.compile(r"^lr$")))
        lr.locator(".noUi-handle").focus()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        # lr = 0.5 by hand: x_inner = 6 + 8·0.5·27 = 114, x.grad = −6·114·(2 + 24·0.5·9) = −75240
        shows("x = 3, lr = 0.5, create_graph=True")
        shows("-75240.0")

        widget.scroll_into_view_if_needed()
        page.screenshot(path=str(WIDGET_SCREENSHOT))
    assert WIDGET_SCREENSHOT.stat().st_size > 10_000
