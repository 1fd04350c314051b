"""Headless notebook execution with nbclient, used by `course run`, `course check` and tests."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import nbformat
from nbclient import NotebookClient
from traitlets.config import Config
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from .notebooks import read


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
    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _short_error(exc: BaseException) -> str:
    if isinstance(exc, CellExecutionError):
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        return lines[-1] if lines else "cell failed"
    return f"{type(exc).__name__}: {exc}"


def execute(path: Path, profile: str = "tiny", timeout: int = 600, allow_errors: bool = False,
            workdir: Path | None = None) -> Execution:
    """Run a notebook top to bottom in a fresh kernel, in a scratch working directory so the
    notebook cannot litter the repository; `timeout` bounds the whole notebook in seconds."""
    nb = read(path)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="course-run-")))
        stack.enter_context(environment(COURSE_PROFILE=profile, PYTHONWARNINGS="ignore",
                                        TOKENIZERS_PARALLELISM="false"))
        # IPC sockets instead of TCP: the kernel is local, and it then has no reason to warn
        # about unencrypted TCP on every start.
        config = Config({"KernelManager": {"transport": "ipc",
                                           "connection_file": str(workdir / "kernel.json")}})
        start = time.perf_counter()
        deadline = start + timeout
        # each cell may use what is left of the notebook's budget, so the budget is per notebook
        client = NotebookClient(nb, kernel_name="python3", config=config,
                                timeout_func=lambda cell: max(1, int(deadline - time.perf_counter())),
                                allow_errors=allow_errors,
                                resources={"metadata": {"path": str(workdir)}})
        error = None
        try:
            client.execute()
        except (CellExecutionError, CellTimeoutError, DeadKernelError, RuntimeError) as exc:
            error = _short_error(exc)
        return Execution(Path(path), nb, time.perf_counter() - start, error)
