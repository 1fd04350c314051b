"""Start N ranks from a notebook with `torchrun` (`python -m torch.distributed.run`), and always
stop them again.

Why a subprocess and not `accelerate.notebook_launcher`: on a CPU the launcher forks the kernel,
and a kernel that has already run multi-threaded torch code hands its children a broken OpenMP
pool (they hang); on a GPU it refuses to fork once the kernel has touched CUDA, which every
notebook that measured something on the GPU has. Fresh interpreters avoid both, at the price of
their imports (a few seconds per launch), so a lesson launches as few times as it can.

The launch runs in a process group of its own. Whatever ends the wait (the job finishing, its
time limit, Ctrl-C / the kernel's interrupt, a grader's SIGALRM), the `finally` kills the group and
every descendant. Each rank also carries an alarm, so even a rank orphaned by a killed kernel ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch

import course_utils


def processes_for(device: torch.device | str) -> int:
    """Ranks for a device: every visible GPU on CUDA (one process per GPU), else 2 CPU processes."""
    device = torch.device(device)
    return torch.cuda.device_count() if device.type == "cuda" else 2


def backend_for(device: torch.device | str) -> str:
    """`nccl` between GPUs, `gloo` between CPU processes: chosen by device, not by profile."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


@dataclass
class Launch:
    """A finished launch: rank 0's result, seconds from start to finish, and the ranks' log."""

    result: object
    seconds: float
    processes: int
    command: list[str] = field(default_factory=list)
    log: str = field(repr=False, default="")


def _descendants(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    return []


def stop(proc: subprocess.Popen) -> None:
    """Kill a launch's process group and every descendant (found before anyone is reparented)."""
    procs = _descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    _wait_dead(procs, timeout=5)


def _wait_dead(procs: list[psutil.Process], timeout: float) -> None:
    """Until each process is gone or a zombie: a killed rank that its dead parent can no longer
    reap stays a zombie (no memory, no CPU) until init collects it, so do not wait for that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for p in procs:
            with contextlib.suppress(psutil.Error):
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
        if not alive:
            return
        time.sleep(0.05)


def _tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def launch(job: str, settings: dict, processes: int, timeout: float = 300.0,
           run_dir: Path | None = None) -> Launch:
    """Run `job` (see `course_utils.distributed.worker.JOBS`) on `processes` ranks and return rank
    0's result. Raises TimeoutError after `timeout` seconds and RuntimeError when a rank fails;
    in every case, interrupts included, no process of the launch survives the call."""
    if processes < 1:
        raise ValueError(f"a launch needs at least one process, got {processes}")
    own_dir = run_dir is None
    run_dir = Path(tempfile.mkdtemp(prefix="course-launch-")) if own_dir else Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = {"pg_timeout": int(min(timeout, 120)), **settings}
    (run_dir / "settings.json").write_text(json.dumps(settings))
    package_root = str(Path(course_utils.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "TOKENIZERS_PARALLELISM": "false",
           "COURSE_DIST_DEADLINE": str(int(timeout) + 30), "PYTHONWARNINGS": "ignore",
           # every rank is on this machine: meet on the loopback address, so that no rank depends on
           # the host name resolving (it does not inside a network-less sandbox)
           "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--local-addr=127.0.0.1",
           f"--nproc-per-node={processes}", "--max-restarts=0", "-m", "course_utils.distributed.worker", job, str(run_dir)]
    log_path = run_dir / "log.txt"
    start = time.perf_counter()
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"the {processes}-process launch of {job!r} did not finish within "
                                   f"{timeout:g} s; all its processes were stopped.\n{_tail(log_path)}") from None
            finally:
                stop(proc)
        seconds = time.perf_counter() - start
        if code != 0:
            errors = "\n".join(_tail(p, 15) for p in sorted(run_dir.glob("error*.txt")))
            raise RuntimeError(f"the {processes}-process launch of {job!r} failed (exit {code}):\n"
                               f"{errors or _tail(log_path)}")
        result_path = run_dir / "result.pt"
        result = torch.load(result_path, weights_only=False) if result_path.exists() else None
        return Launch(result, seconds, processes, cmd, log_path.read_text(errors="replace"))
    finally:
        if own_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
