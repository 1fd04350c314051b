"""Headless notebook execution with nbclient, used by `course run`, `course check` and tests.

Every run gets a fresh kernel in a scratch working directory; a run can also be fenced in for
grading untrusted notebooks: a time budget per cell and per notebook, a memory cap, and every
process the notebook started killed at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import nbformat
import psutil
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from traitlets.config import Config

from course_utils.notebooks.build import read


@dataclass
class Execution:
    """An executed notebook, how long it took, and the error that stopped it, if any."""

    path: Path
    notebook: nbformat.NotebookNode
    seconds: float
    error: str | None = None


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set environment variables for kernels started inside the block, then restore them."""
    def put(settings: dict[str, str | None]) -> None:
        for key, value in settings.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    saved = {k: os.environ.get(k) for k in values}
    try:
        put(values)
        yield
    finally:
        put(saved)


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Failed|Interrupt|Exit)\b")


def _short_error(exc: BaseException) -> str:
    """The failing cell's exception line and the few lines of message under it: a multi-line
    message (a rank's traceback, a failed claim's numbers) ends in decoration, not in the cause."""
    if isinstance(exc, CellExecutionError):
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # the traceback's colours
        lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
        starts = [i for i, ln in enumerate(lines) if _EXCEPTION_LINE.match(ln)]
        if not starts:
            return lines[-1] if lines else "cell failed"
        wordy = [ln for ln in lines[starts[-1]:] if re.search(r"\w", ln)]
        return " | ".join(wordy[:6])
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _processes_of(workdir: Path) -> list[psutil.Process]:
    """The kernel (found by its connection file) and every process working inside `workdir`:
    children that detached from the kernel still keep the scratch folder as their cwd."""
    marker, found = str(workdir), []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            if proc.pid == os.getpid():
                continue
            cmd = " ".join(proc.info["cmdline"] or [])
            cwd = proc.info["cwd"] or ""
            if marker in cmd or cwd == marker or cwd.startswith(marker + os.sep):
                found.append(proc)
        except (psutil.Error, TypeError):
            continue
    return found


def _tree(procs: list[psutil.Process]) -> list[psutil.Process]:
    seen = {p.pid: p for p in procs}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            for child in proc.children(recursive=True):
                seen.setdefault(child.pid, child)
    return list(seen.values())


def kill_processes(workdir: Path) -> int:
    """Kill every process a notebook run left behind; returns how many there were."""
    procs = _tree(_processes_of(workdir))
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=5)
    return len(procs)


class MemoryWatch(threading.Thread):
    """Kills a run's processes when together they hold more than `limit_gb` of resident memory."""

    def __init__(self, workdir: Path, limit_gb: float, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.workdir, self.limit, self.interval = workdir, limit_gb * 2**30, interval
        self.tripped: float | None = None
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            rss = 0
            for proc in _tree(_processes_of(self.workdir)):
                with contextlib.suppress(psutil.Error):
                    rss += proc.memory_info().rss
            if rss > self.limit:
                self.tripped = rss / 2**30
                kill_processes(self.workdir)
                return

    def stop(self) -> None:
        self._stop.set()


def execute_notebook(nb: nbformat.NotebookNode, workdir: Path, profile: str = "tiny",
                     timeout: int = 600, cell_timeout: int | None = None,
                     allow_errors: bool = False, memory_gb: float | None = None,
                     cell_budget: Callable[[nbformat.NotebookNode], int | None] | None = None,
                     path: Path | None = None, rehearsal: bool = False) -> Execution:
    """Execute `nb` in place in a fresh kernel whose working directory is `workdir`.

    `timeout` bounds the whole notebook; `cell_timeout`, when set, bounds each cell and the
    kernel is interrupted (not killed) so later cells still run; `cell_budget` may give chosen
    cells a budget of their own; `memory_gb` caps the resident memory of everything the
    notebook starts; `rehearsal` runs the kernel with COURSE_REHEARSAL=1 (hub models and data
    replaced by local stand-ins, see `course_utils.hub`). Processes left running are killed at
    the end."""
    start = time.perf_counter()
    deadline = start + timeout

    def budget(cell: nbformat.NotebookNode) -> int:
        own = cell_budget(cell) if cell_budget else None
        if own is not None:
            return own
        left = max(1, int(deadline - time.perf_counter()))
        return min(left, cell_timeout) if cell_timeout else left

    # IPC sockets instead of TCP: the kernel is local, and it then has no reason to warn about
    # unencrypted TCP on every start.
    config = Config({"KernelManager": {"transport": "ipc",
                                       "connection_file": str(workdir / "kernel.json")}})
    client = NotebookClient(nb, kernel_name="python3", config=config, timeout_func=budget,
                            allow_errors=allow_errors, interrupt_on_timeout=cell_timeout is not None,
                            resources={"metadata": {"path": str(workdir)}})
    watch = MemoryWatch(workdir, memory_gb) if memory_gb else None
    error = None
    if rehearsal:
        from course_utils.rehearsal import kernel_environment

        switch = kernel_environment()
    else:
        switch = {"COURSE_REHEARSAL": None}
    with environment(COURSE_PROFILE=profile, PYTHONWARNINGS="ignore",
                     TOKENIZERS_PARALLELISM="false", **switch):
        if watch:
            watch.start()
        try:
            client.execute()
        except (CellExecutionError, CellTimeoutError, DeadKernelError, RuntimeError) as exc:
            error = _short_error(exc)
        finally:
            if watch:
                watch.stop()
            kill_processes(workdir)
    if watch and watch.tripped:
        error = f"memory cap exceeded: {watch.tripped:.1f} GB > {memory_gb:g} GB, kernel killed"
    return Execution(path or workdir, nb, time.perf_counter() - start, error)


def execute(path: Path, profile: str = "tiny", timeout: int = 600, allow_errors: bool = False,
            workdir: Path | None = None, rehearsal: bool = False) -> Execution:
    """Run a notebook top to bottom in a fresh kernel, in a scratch working directory so the
    notebook cannot litter the repository; `timeout` bounds the whole notebook in seconds."""
    nb = read(path)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="course-run-")))
        return execute_notebook(nb, workdir, profile=profile, timeout=timeout,
                                allow_errors=allow_errors, path=Path(path), rehearsal=rehearsal)
