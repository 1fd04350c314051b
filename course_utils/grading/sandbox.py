"""Where a submission's kernel runs: inside bubblewrap when it is available, else unconfined.

The bwrap sandbox is a fresh mount namespace holding only the system (/usr, /etc), the Python
environment and the course package, all read-only; the submission's scratch folder read-write; a
private /tmp; no network, no view of other processes (its own PID namespace: everything it
starts dies with the kernel), no $HOME, no solutions/, no hidden tests, no other submissions.
As root, the kernel drops to an unprivileged uid of its own so the process-count limit holds.
Memory and processes are capped by rlimits set in `confine` before the kernel starts.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

KINDS = ("auto", "bwrap", "docker", "none")
LIBRARY_HEADROOM_GB = 4.0  # address space torch and friends reserve before any data
_UIDS = itertools.count()


@dataclass(frozen=True)
class Sandbox:
    """The isolation a kernel gets, and why (a line `course check` prints)."""

    kind: str
    reason: str

    @property
    def warning(self) -> str | None:
        if self.kind != "none":
            return None
        return ("WARNING: submissions run WITHOUT a sandbox (" + self.reason + "): learner code can "
                "read files, use the network and outlive the run; install bubblewrap "
                "(apt-get install bubblewrap) and use --sandbox bwrap")


def _bwrap_works() -> str | None:
    """None when bwrap can build a sandbox here, else why not."""
    if not shutil.which("bwrap"):
        return "bwrap is not installed"
    try:
        run = subprocess.run(["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
                              "--dev", "/dev", "--proc", "/proc", "true"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap failed to start: {exc}"
    if run.returncode != 0:
        return "bwrap cannot create namespaces here: " + (run.stderr.strip() or f"exit {run.returncode}")
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        return "setpriv (util-linux) is missing, needed to drop root inside the sandbox"
    return None


def _docker_works() -> str | None:
    if not shutil.which("docker"):
        return "docker is not installed"
    try:
        run = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker failed: {exc}"
    return None if run.returncode == 0 else "no docker daemon is reachable"


def choose(requested: str = "auto") -> Sandbox:
    """The sandbox `course check --sandbox` asked for; `auto` takes the strongest that works."""
    if requested not in KINDS:
        raise ValueError(f"--sandbox must be one of {', '.join(KINDS)}, not {requested!r}")
    if requested == "none":
        return Sandbox("none", "--sandbox none")
    if requested == "docker":
        problem = _docker_works() or "the docker backend is not implemented yet; use bwrap"
        raise ValueError(f"--sandbox docker: {problem}")
    problem = _bwrap_works()
    if problem is None:
        return Sandbox("bwrap", "bubblewrap: no network, read-only course and Python, private /tmp, "
                                "own PID namespace, rlimits on memory and processes")
    if requested == "bwrap":
        raise ValueError(f"--sandbox bwrap: {problem}")
    return Sandbox("none", f"no sandbox tool works here: {problem}")


def _ro(path: Path) -> list[str]:
    return ["--ro-bind", str(path), str(path)]


def _parents(paths: list[Path]) -> list[str]:
    """bwrap creates missing parents 0700; make them traversable for the unprivileged kernel."""
    out, seen = [], set()
    for path in paths:
        for parent in reversed(path.parents):
            if str(parent) not in ("/", *seen):
                seen.add(str(parent))
                out += ["--perms", "0755", "--dir", str(parent)]
    return out


def command(sandbox: Sandbox, kernel: list[str], workdir: Path, env: dict[str, str],
            memory_gb: float, processes: int) -> list[str]:
    """The argv that starts `kernel` confined: limits always, the bwrap jail when chosen."""
    package = Path(__file__).resolve().parents[1]
    memory = int((memory_gb + LIBRARY_HEADROOM_GB) * 2**30)
    if sandbox.kind == "none":
        return [sys.executable, "-m", "course_utils.grading.confine", "--memory", str(memory),
                "--processes", str(processes), "--", *kernel]
    inside_pkg = Path("/opt/course/course_utils")
    prefixes = sorted({Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()})
    binds = [Path("/usr"), Path("/etc"), *prefixes]
    argv = ["bwrap", "--unshare-all", "--unshare-user-try", "--die-with-parent", "--new-session",
            "--clearenv", "--hostname", "sandbox"]
    if os.geteuid() == 0:
        argv[1:3] = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                     "--unshare-cgroup-try", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    argv += ["--perms", "1777", "--tmpfs", "/tmp"]
    argv += _parents([*prefixes, inside_pkg, workdir])
    for path in binds:
        argv += _ro(path)
    for link in ("lib", "lib64", "bin", "sbin"):
        if Path("/usr", link).exists() and Path("/" + link).is_symlink():
            argv += ["--symlink", f"usr/{link}", f"/{link}"]
        elif Path("/" + link).is_dir():
            argv += _ro(Path("/" + link))
    argv += ["--ro-bind", str(package), str(inside_pkg), "--bind", str(workdir), str(workdir),
             "--dev", "/dev", "--proc", "/proc", "--chdir", str(workdir)]
    for key, value in {**env, "PYTHONPATH": str(inside_pkg.parent), "HOME": "/tmp/home",
                       "PATH": "/usr/local/bin:/usr/bin:/bin"}.items():
        argv += ["--setenv", key, value]
    argv.append("--")
    if os.geteuid() == 0:
        uid = str(61000 + (os.getpid() * 97 + next(_UIDS)) % 4000)
        argv += ["setpriv", "--reuid", uid, "--regid", uid, "--clear-groups", "--inh-caps=-all",
                 "--bounding-set=-all", "--"]
    argv += [sys.executable, "-m", "course_utils.grading.confine", "--memory", str(memory),
             "--processes", str(processes), "--", *kernel]
    return argv


def owner_uid(argv: list[str]) -> int | None:
    """The uid the kernel runs as when `command` drops root (so the grader can share files)."""
    return int(argv[argv.index("--reuid") + 1]) if "--reuid" in argv else None
