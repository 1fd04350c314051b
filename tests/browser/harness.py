"""The browser tests' harness: a real `jupyter lab`, headless Chromium pages, a grading run."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import course_utils

ROOT = Path(course_utils.__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
# Flags for a quiet headless Chromium: no sandbox (CI runs as root), and none of the background
# traffic (component updates, sync, QUIC probes) that a machine without internet would stall on.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# JupyterLab settings for a deterministic page: every cell in the DOM (no windowing), no news or
# update check (they would pop a notification over the notebook and fetch from the internet).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
}


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    """A running `jupyter lab` whose root is a scratch copy of the course."""

    root: Path
    port: int
    token: str
    process: subprocess.Popen
    log: Path

    def url(self, path: str) -> str:
        """The browser address of a path under the server's root, token included."""
        return f"http://127.0.0.1:{self.port}/lab/tree/{path}?reset&token={self.token}"

    def stop(self) -> None:
        """Shut the server (and its kernels) down, killing it if it does not stop in time."""
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def start_lab(scratch: Path, timeout: float = 90) -> LabServer:
    """Copy lessons/ and solutions/ into `scratch` and start `jupyter lab` there, headless."""
    root = scratch / "course"
    for folder in ("lessons", "solutions"):
        shutil.copytree(ROOT / folder, root / folder)
    settings = scratch / "lab-settings"
    for name, value in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               JUPYTER_CONFIG_DIR=str(scratch / "jupyter-config"),
               JUPYTER_DATA_DIR=str(scratch / "jupyter-data"),
               JUPYTER_RUNTIME_DIR=str(scratch / "jupyter-runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(scratch / "lab-workspaces"))
    # The suite runs kernels with MPLBACKEND=agg, under which plt.show() displays nothing; a
    # learner's kernel uses matplotlib's inline backend, so the browser must see that one.
    env.pop("MPLBACKEND", None)
    port, token = free_port(), secrets.token_hex(16)
    log = scratch / "jupyter-lab.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--ServerApp.port_retries=0", "--allow-root", "--LabApp.news_url=None",
         "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=root, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    server = LabServer(root, port, token, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"jupyter lab did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def new_page(context: Any, request: pytest.FixtureRequest, artifacts: Path) -> Iterator[Any]:
    """A page that screenshots itself when the test (or tests) using it failed, then closes."""
    page = context.new_page()
    yield page
    nodes = [request.node] if isinstance(request.node, pytest.Item) else [
        item for item in request.session.items if item.path == request.path]
    for node in nodes:
        report = getattr(node, "report_call", None)
        if report is not None and report.failed:
            page.screenshot(path=str(artifacts / f"FAILED-{node.name}.png"), full_page=True)
            break
    page.close()


class GradingRun:
    """`course check --report grades.html` running in the background since the session began."""

    def __init__(self, folder: Path) -> None:
        self.report = folder / "grades.html"
        self.submissions = ["lessons/00_setup.ipynb", "solutions/00_setup.ipynb"]
        for name in self.submissions:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, folder / name)
        self.log = folder / "course-check.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "course_utils.cli", "check", *self.submissions, "--jobs", "2",
             "--report", str(self.report)],
            cwd=folder, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)))

    def wait(self, timeout: float = 600) -> Path:
        """The report, once grading ended (exit 1: the untouched lesson is not attempted)."""
        code = self.process.wait(timeout)
        if code not in (0, 1) or not self.report.is_file():
            raise RuntimeError(f"course check exited with {code}:\n{self.log.read_text()[-3000:]}")
        return self.report
