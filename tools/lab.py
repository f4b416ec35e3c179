"""Open the course in JupyterLab: the one command behind `make lab` and the browser test.

A plain `jupyter lab` fails or misbehaves on many of the machines students use:
- as root (Docker, cloud VMs, many CI runners) it refuses to start without --allow-root;
- with no display (ssh, Docker) it may start a text-mode browser (lynx, w3m) in the terminal.
So this adds --allow-root for root, and --no-browser on Linux without a display, where
JupyterLab prints the address with its token for you to open. Everything else goes to
JupyterLab unchanged: `make lab ARGS="--port=9000 --ip=0.0.0.0"`.

Usage: python tools/lab.py [--notebooks DIR] [JupyterLab options...]
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]


def can_open_browser(platform: str = sys.platform, environ: Mapping[str, str] = os.environ) -> bool:
    """macOS and Windows always can; Linux and the BSDs only with a graphical display."""
    if platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))
    return True


def lab_command(notebooks: str | os.PathLike, extra: Sequence[str] = (), *, euid: int | None = None,
                platform: str = sys.platform, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The JupyterLab command line for this machine and user (see the module's docstring)."""
    euid = os.geteuid() if euid is None and hasattr(os, "geteuid") else euid
    cmd = [sys.executable, "-m", "jupyterlab"]
    if euid == 0:
        cmd.append("--allow-root")
    if not can_open_browser(platform, environ):
        cmd.append("--no-browser")
    return [*cmd, *extra, str(notebooks)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     usage="python tools/lab.py [--notebooks DIR] [JupyterLab options...]")
    parser.add_argument("--notebooks", default=str(REPO / "notebooks"),
                        help="the folder JupyterLab opens (default: the course's notebooks/)")
    args, extra = parser.parse_known_args(argv)
    if not Path(args.notebooks).is_dir():
        parser.exit(2, f"error: --notebooks {args.notebooks}: no such folder\n")
    cmd = lab_command(args.notebooks, extra)
    if not can_open_browser():
        print("No display here, so no browser is opened: open one of the addresses JupyterLab "
              "prints below (with its token) in your browser; on a remote machine, forward the "
              "port first (ssh -L 8888:localhost:8888 ...).", flush=True)
    print("$", shlex.join(["python", *cmd[1:]]), flush=True)
    os.execv(cmd[0], cmd)  # JupyterLab takes this process: Ctrl-C and signals reach it directly


if __name__ == "__main__":
    main()
