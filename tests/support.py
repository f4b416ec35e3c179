"""What several test files share: CI's stricter rule for a missing tool (the browser among
them), and the handling of a server the test starts (a free port, a request that waits for it,
stopping it with its children).
Not a test module: test files import it (`from support import ...`)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]  # the repository root
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright's own browser downloads are never used


def unavailable(reason: str):
    """A missing tool or package: skip here, fail in CI (where .ci/run installs everything)."""
    if IN_CI:
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


def need_browser() -> None:
    """Debian's Chromium and Playwright, which drives it (.ci/run installs the first)."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("playwright is not installed: pip install -r requirements.txt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str, server: subprocess.Popen, method: str = "GET", seconds: float = 30,
          timeout: float = 60):
    """Open ``url``; while ``server`` is still running, a refused connection is tried again for
    up to ``seconds`` (a server that is starting refuses, and once, 2 ms after JupyterLab had
    printed its address, 127.0.0.1 refused it too). Any other error is raised at once."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=timeout)
        except urllib.error.URLError as error:
            refused = isinstance(error.reason, ConnectionRefusedError)
            if not refused or server.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def end_process_group(process: subprocess.Popen, waits: tuple[float, float] = (15, 15)) -> None:
    """Stop ``process`` and everything it started in its session (start_new_session=True):
    SIGTERM, then SIGKILL, waiting up to ``waits`` seconds after each."""
    for sig, wait in zip((signal.SIGTERM, signal.SIGKILL), waits):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
