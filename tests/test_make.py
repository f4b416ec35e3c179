"""The two commands a newcomer types, `make lab` and `make test`, on machines unlike ours:
as root, without a display, without Graphviz, on Linux without a GPU (TORCH=cpu)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lab  # tools/lab.py: the command behind `make lab`
from support import REPO, end_process_group, fetch, free_port, unavailable

MAKE = shutil.which("make")
IN_COURSE_VENV = Path(sys.prefix).resolve() == (REPO / ".venv").resolve()


def needs_course_venv():
    """`make` runs .venv's Python: only meaningful when this test runs in .venv (`make test`)."""
    if MAKE is None or not IN_COURSE_VENV:
        unavailable("needs `make` and the course's .venv (run the tests with `make test`)")


def make_environment(*drop: str) -> dict[str, str]:
    """This process's environment for a fresh `make`: without an outer make's flags (pytest may
    itself run under `make test`) and without the variables in ``drop``."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", *drop)}


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Run ``cmd`` in the course folder, in a session of its own, its output into ``log``."""
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def stop(process: subprocess.Popen, log: Path) -> str:
    """End a process started by ``start``, with everything it started; its output."""
    end_process_group(process)
    return log.read_text()


# ---------------------------------------------------------------- the JupyterLab command line

@pytest.mark.parametrize("euid, platform, environ, allow_root, no_browser", [
    (0, "linux", {}, True, True),                          # Docker, a cloud VM: root, no display
    (0, "linux", {"DISPLAY": ":0"}, True, False),          # root on a desktop
    (1000, "linux", {"WAYLAND_DISPLAY": "wayland-0"}, False, False),  # a Linux laptop
    (1000, "linux", {}, False, True),                      # ssh into a lab machine
    (501, "darwin", {}, False, False),                     # macOS always has a browser
])
def test_lab_command_fits_the_user_and_the_display(euid, platform, environ, allow_root, no_browser):
    cmd = lab.lab_command("nb", ["--port=9000"], euid=euid, platform=platform, environ=environ)
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"]
    assert ("--allow-root" in cmd) == allow_root
    assert ("--no-browser" in cmd) == no_browser
    assert cmd[-2:] == ["--port=9000", "nb"]  # the user's options, then the folder


def test_lab_refuses_a_missing_folder(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "tools" / "lab.py"), "--notebooks",
                             str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "no such folder" in result.stderr and "Traceback" not in result.stderr


def test_make_lab_starts_as_root_without_a_display_and_answers_on_its_url(tmp_path):
    """`make lab` itself, as a user runs it: it starts, prints its address with the token it
    made (no browser to open here), and that address serves JupyterLab."""
    needs_course_venv()
    port = free_port()
    env = make_environment("DISPLAY", "WAYLAND_DISPLAY", "JUPYTER_TOKEN")
    env.update({"JUPYTER_PORT": str(port),  # the one change from a user's `make lab`: a free port
                "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
                "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
                "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
                "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")})
    log = tmp_path / "make_lab.log"
    server = start([MAKE, "--no-print-directory", "lab"], env, log)
    # the address JupyterLab prints: our port, or the next free one if another process took it
    # meanwhile (JupyterLab moves on, as it would for a user)
    url = r"http://(?:localhost|127\.0\.0\.1):(\d+)/lab\?token=([0-9a-f]+)"
    try:
        deadline, printed = time.monotonic() + 90, None
        while printed is None:
            assert server.poll() is None, f"make lab exited with {server.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no address printed within 90 s:\n{log.read_text()}"
            time.sleep(0.3)
            printed = re.search(url, log.read_text())
        port, token = printed.groups()
        with fetch(f"http://127.0.0.1:{port}/lab?token={token}", server) as page:
            assert page.status == 200 and b"JupyterLab" in page.read()
        with fetch(f"http://127.0.0.1:{port}/api/status?token={token}", server) as status:
            assert status.status == 200
        fetch(f"http://127.0.0.1:{port}/api/shutdown?token={token}", server, method="POST").close()
        server.wait(timeout=60)
    finally:
        output = stop(server, log)
    assert server.returncode == 0, output
    if os.geteuid() == 0:
        assert "--allow-root" in output  # tools/lab.py shows the command line it runs
    assert "--no-browser" in output and "No display here" in output
    assert "Running as root is not recommended" not in output


@pytest.mark.parametrize("target", ["lab", "test"])
def test_make_stops_with_a_clear_message_when_dot_cannot_be_installed(tmp_path, target):
    """No `dot` and no apt-get (macOS, Fedora, a minimal image): `make lab` and `make test` stop
    before JupyterLab or pytest start, with what to install."""
    needs_course_venv()
    bare = tmp_path / "bin"  # a PATH with a shell and little else: no dot, no apt-get, no sudo
    bare.mkdir()
    for tool in ("bash", "sh", "cat", "id"):
        (bare / tool).symlink_to(shutil.which(tool))
    env = {**make_environment("DISPLAY", "WAYLAND_DISPLAY"), "PATH": str(bare),
           # had the check not stopped `make test`, pytest would only list the tests
           "PYTEST_ADDOPTS": "--collect-only -q", "JUPYTER_PORT": str(free_port())}
    log = tmp_path / "make.log"
    process = start([MAKE, "--no-print-directory", target], env, log)
    try:
        process.wait(timeout=120)
    finally:
        output = stop(process, log)
    assert process.returncode != 0, output
    assert "Graphviz's `dot` program is missing" in output
    assert "brew install graphviz" in output and "apt-get install graphviz" in output
    assert "jupyterlab" not in output and "pytest" not in output  # stopped before either began


# ---------------------------------------------------------------- PyTorch for CPU-only Linux

def make_dry_run(*args: str, stamp: str | None = None, new_pins: bool = False,
                 tmp_path: Path) -> subprocess.CompletedProcess:
    """`make -n` in a copy of the Makefile and the files it depends on (never the real .venv);
    ``stamp``: what an earlier `make setup` recorded; ``new_pins``: requirements changed since."""
    for name in ("Makefile", "requirements.txt", "requirements-site.txt", "pyproject.toml"):
        shutil.copy2(REPO / name, tmp_path / name)
    if stamp is not None:
        (tmp_path / ".venv").mkdir(exist_ok=True)
        (tmp_path / ".venv" / ".installed").write_text(stamp + "\n")
        (tmp_path / ".venv" / ".installed-site").touch()  # the site's tools (make test, make site)
    if new_pins:
        later = time.time() + 60
        os.utime(tmp_path / "requirements.txt", (later, later))
    return subprocess.run([MAKE, "-n", *args], cwd=tmp_path, env=make_environment(), capture_output=True,
                          text=True)


@pytest.fixture
def need_make():
    if MAKE is None:
        pytest.skip("needs `make`")


def test_torch_cpu_installs_from_pytorchs_cpu_index(tmp_path, need_make):
    default = make_dry_run("setup", tmp_path=tmp_path)
    cpu = make_dry_run("setup", "TORCH=cpu", tmp_path=tmp_path)
    assert default.returncode == 0 and cpu.returncode == 0, default.stderr + cpu.stderr
    install = [ln for ln in cpu.stdout.splitlines() if "-r requirements.txt" in ln]
    assert install and "--extra-index-url https://download.pytorch.org/whl/cpu" in install[0]
    assert "download.pytorch.org" not in default.stdout
    assert 'echo "torch=cpu"' in cpu.stdout and 'echo "torch=default"' in default.stdout


def test_binder_uses_the_same_cpu_index_as_make(need_make):
    makefile = (REPO / "Makefile").read_text()
    index = re.search(r"^TORCH_CPU_INDEX := (\S+)$", makefile, re.M).group(1)
    binder = (REPO / "binder" / "requirements.txt").read_text().splitlines()
    assert f"--extra-index-url {index}" in binder


def test_the_venv_remembers_its_torch_and_refuses_to_mix(tmp_path, need_make):
    wrong = make_dry_run("setup", "TORCH=gpu", tmp_path=tmp_path)
    assert wrong.returncode != 0 and "TORCH=gpu is not a choice: use TORCH=cpu" in wrong.stderr
    mixed = make_dry_run("test", "TORCH=cpu", stamp="torch=default", tmp_path=tmp_path)
    assert mixed.returncode != 0
    assert ".venv holds PyTorch's default wheels" in mixed.stderr
    assert "run `make clean`, then `make setup TORCH=cpu`" in mixed.stderr
    same = make_dry_run("test", "TORCH=cpu", stamp="torch=cpu", tmp_path=tmp_path)
    assert same.returncode == 0 and "pip install" not in same.stdout, same.stderr
    # a later reinstall (new pins) without TORCH keeps the CPU-only wheels the venv was made with
    later = make_dry_run("test", stamp="torch=cpu", new_pins=True, tmp_path=tmp_path)
    assert later.returncode == 0, later.stderr
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in later.stdout


def test_the_site_tools_are_installed_for_make_site_and_make_test_only(tmp_path, need_make):
    """requirements-site.txt (Jupyter Book) on top of the course's pins, which it cannot move;
    `make lab` (what students run) never installs it."""
    site = make_dry_run("site", tmp_path=tmp_path)
    test = make_dry_run("test", tmp_path=tmp_path)
    lab = make_dry_run("lab", tmp_path=tmp_path)
    assert site.returncode == 0 and test.returncode == 0 and lab.returncode == 0, \
        site.stderr + test.stderr + lab.stderr
    for run in (site, test):
        install = [ln for ln in run.stdout.splitlines() if "-r requirements-site.txt" in ln]
        assert install and "-c requirements.txt" in install[0], run.stdout
        assert run.stdout.index("-r requirements.txt") < run.stdout.index("-r requirements-site.txt")
    assert "requirements-site.txt" not in lab.stdout
