"""Running one submission: its cells, then one probe cell, in a confined kernel.

The kernel only produces data. After the learner's cells, the grader appends one cell that calls
each exercise's probe (`checks.probe`) and displays its JSON record under `PROBE_MIME`. The grader
reads those records from the kernel's messages and judges them in its own process; nothing the
kernel prints, displays or writes can be a verdict. Limits: a time budget per cell, a hard limit
for the learner's cells as a whole (later cells are skipped, the probe cell still runs with a
budget of its own), a cap on captured output per cell and per notebook, and a cap on any single
message the kernel sends. At the end the kernel's sandbox is torn down with everything in it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import zmq
import zmq.asyncio
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbformat.v4 import new_code_cell, new_output

from course_utils.grading import sandbox as sandboxes
from course_utils.notebooks.runner import kill_processes

PROBE_MIME = "application/x-course-probe"
CELL_OUTPUT_CHARS = 200_000
NOTEBOOK_OUTPUT_CHARS = 2_000_000
PROBE_CHARS = 8_000_000
MAX_MESSAGE_BYTES = 16 * 2**20
GRADER = {"course_grader": True}
CAP_MARK = "[output capped by the grader]"


def probe_cell(exercises: list[str], extras: dict[str, list], seconds: float) -> str:
    """Source of the cell that asks each exercise's probe for data (and runs hidden inputs)."""
    payload = json.dumps([[e, extras.get(e, [])] for e in exercises])
    return (f"from IPython.display import display as _course_display\n"
            f"import json as _course_json\n"
            f"for _course_e, _course_x in _course_json.loads({payload!r}):\n"
            f"    try:\n"
            f"        from course_utils.checks import probe as _course_probe\n"
            f"        _course_r = _course_probe(_course_e, extras=_course_x, seconds={seconds!r})\n"
            f"    except BaseException as _course_exc:\n"
            f"        _course_r = _course_json.dumps({{'exercise': _course_e, 'outcome': 'probe_error', "
            f"'message': f'{{type(_course_exc).__name__}}: {{_course_exc}}'[:300]}})\n"
            f"    _course_display({{{PROBE_MIME!r}: _course_r}}, raw=True)\n")


class _Manager(AsyncKernelManager):
    """A kernel manager whose sockets refuse oversized messages and whose kernel file the
    unprivileged sandbox user can read."""

    def client(self, **kwargs):
        context = zmq.asyncio.Context()
        context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        return super().client(context=context, **kwargs)

    def write_connection_file(self, **kwargs) -> None:
        super().write_connection_file(**kwargs)
        uid = getattr(self, "sandbox_uid", None)
        if uid is not None:
            os.chown(self.connection_file, uid, uid)


@dataclass
class Run:
    """What came back from one confined kernel."""

    notebook: nbformat.NotebookNode
    seconds: float
    error: str | None = None
    interrupted: list[int] = field(default_factory=list)
    skipped: int = 0
    reports_skipped: list[int] = field(default_factory=list)  # machine-report cells not run
    truncated: list[int] = field(default_factory=list)
    records: dict[str, dict] = field(default_factory=dict)


MACHINE_REPORT = "machine-report"  # a cell's `course.role`: it describes the machine it runs on


def machine_report(cell) -> bool:
    """Whether a cell only reports the machine (lesson 00's doctor): in grading that machine is
    the sandbox, so its output would say nothing about the learner's set-up. Skipping a cell can
    only take learner code away, so the learner's own metadata may decide it."""
    meta = cell.get("metadata", {}).get("course", {})
    return cell.cell_type == "code" and isinstance(meta, dict) and meta.get("role") == MACHINE_REPORT


class _Client(NotebookClient):
    """nbclient with grading limits: output caps, timed-out cells recorded, late cells skipped."""

    def __init__(self, nb, run: Run, learner_deadline: float, run_reports: bool = False, **kw) -> None:
        super().__init__(nb, **kw)
        self.run_state, self.learner_deadline, self.run_reports = run, learner_deadline, run_reports
        self.chars: dict[int, int] = {}
        self.total = 0
        self.probe_total = 0
        self.current = -1

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        self.current = cell_index
        if not cell.metadata.get("course_grader") and time.monotonic() >= self.learner_deadline:
            self.run_state.skipped += cell.cell_type == "code"
            return cell
        if not self.run_reports and machine_report(cell):
            self.run_state.reports_skipped.append(cell_index)
            return cell
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    async def _async_handle_timeout(self, timeout, cell=None):
        if self.current not in self.run_state.interrupted:
            self.run_state.interrupted.append(self.current)
        return await super()._async_handle_timeout(timeout, cell)

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        size = len(content.get("text", "")) + sum(len(str(v)) for v in content.get("data", {}).values()) \
            + len(str(content.get("traceback", "")))
        probe = PROBE_MIME in content.get("data", {})
        if probe and self.nb.cells[cell_index].metadata.get("course_grader"):
            self.probe_total += size
            if self.probe_total <= PROBE_CHARS:
                return super().output(outs, msg, display_id, cell_index)
            return None
        used = self.chars.get(cell_index, 0)
        if used + size > CELL_OUTPUT_CHARS or self.total + size > NOTEBOOK_OUTPUT_CHARS:
            if cell_index not in self.run_state.truncated:
                self.run_state.truncated.append(cell_index)
                outs.append(new_output("stream", name="stderr", text=CAP_MARK + "\n"))
            return None
        self.chars[cell_index] = used + size
        self.total += size
        return super().output(outs, msg, display_id, cell_index)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # the grader's thread choice reaches the kernel


def _environment(workdir: Path, profile: str) -> dict[str, str]:
    """Variables the kernel sees: caches and settings inside its own scratch folder only."""
    private = str(workdir / ".private")
    return {"COURSE_PROFILE": profile, "PYTHONWARNINGS": "ignore", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "MPLBACKEND": "agg", "COURSE_CACHE": f"{private}/course-cache", "HF_HOME": f"{private}/hf",
           "MPLCONFIGDIR": f"{private}/matplotlib", "IPYTHONDIR": f"{private}/ipython",
           "TORCH_HOME": f"{private}/torch", "JUPYTER_RUNTIME_DIR": f"{private}/jupyter",
           **{k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ}}


OUTPUT_CAP_STARTUP = f"""\
# Written by the grader: caps what this kernel prints, so a noisy notebook stays gradable.
def _course_cap(cell_chars={CELL_OUTPUT_CHARS}, total_chars={NOTEBOOK_OUTPUT_CHARS}):
    import sys
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    state = {{"cell": 0, "total": 0, "noted": False}}
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)

        def write(text, original=stream.write):
            size = len(text)
            if state["cell"] + size > cell_chars or state["total"] + size > total_chars:
                if not state["noted"]:
                    state["noted"] = True
                    original("\\n{CAP_MARK}\\n")
                return size
            state["cell"] += size
            state["total"] += size
            return original(text)

        stream.write = write

    def reset(*args):
        state["cell"], state["noted"] = 0, False

    shell.events.register("pre_run_cell", reset)


_course_cap()
del _course_cap
"""


def _kernel_startup(ipython_dir: Path) -> None:
    """The kernel's own output cap, installed before any learner code runs (the grader also
    drops excess output and refuses oversized messages, whatever the kernel does later)."""
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-course-output-cap.py").write_text(OUTPUT_CAP_STARTUP)


def _seed_cache(target: Path) -> None:
    """A private copy of the checkpoints the course trains itself, so a submission reads them
    without retraining but can never alter what the next one sees."""
    from course_utils.profile import cache_dir

    host = cache_dir()
    for name in ("vision", "causal_lm", "instruct_lm"):
        if (host / name).is_dir():
            shutil.copytree(host / name, target / name, dirs_exist_ok=True)


def run_confined(nb: nbformat.NotebookNode, workdir: Path, box: sandboxes.Sandbox, profile: str,
                 notebook_seconds: int, cell_seconds: int, probe_seconds: int, memory_gb: float,
                 processes: int, probe_source: str, extra_env: dict[str, str] | None = None,
                 run_reports: bool = False) -> Run:
    """Execute the learner's cells and the probe cell in a confined kernel; collect records.
    Machine-report cells are skipped unless `run_reports`."""
    nb.cells.append(new_code_cell(probe_source, metadata=dict(GRADER)))
    start = time.monotonic()
    learner_deadline = start + notebook_seconds
    hard_deadline = learner_deadline + probe_seconds + 15
    run = Run(nb, 0.0)
    env = {**_environment(workdir, profile), **(extra_env or {})}
    _seed_cache(Path(env["COURSE_CACHE"]))
    _kernel_startup(Path(env["IPYTHONDIR"]))
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    argv = sandboxes.command(box, kernel, workdir, env, memory_gb, processes)
    km = _Manager(transport="ipc", connection_file=str(workdir / "kernel.json"))
    km._kernel_spec = KernelSpec(argv=argv, display_name="course sandbox", language="python",
                                 interrupt_mode="message", env={} if box.kind == "bwrap" else env)
    km.sandbox_uid = sandboxes.owner_uid(argv)
    if km.sandbox_uid is not None:
        for folder, dirs, files in os.walk(workdir):
            for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                os.chown(name, km.sandbox_uid, km.sandbox_uid)

    def budget(cell) -> int:
        if cell.metadata.get("course_grader"):
            return probe_seconds
        return max(1, min(cell_seconds, int(learner_deadline - time.monotonic()) + 1))

    client = _Client(nb, run, learner_deadline, run_reports, km=km, timeout_func=budget, allow_errors=True,
                     interrupt_on_timeout=True, resources={"metadata": {"path": str(workdir)}})
    client.owns_km = True  # shut the kernel down at the end, as for a kernel nbclient made itself
    stopped = threading.Event()

    def watchdog() -> None:
        if not stopped.wait(max(0.0, hard_deadline - time.monotonic())):
            run.error = f"hard time limit reached ({notebook_seconds} s for the notebook), kernel stopped"
            _kill(km, workdir)

    guard = threading.Thread(target=watchdog, daemon=True)
    guard.start()
    try:
        client.execute(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (CellExecutionError, CellTimeoutError, DeadKernelError, RuntimeError) as exc:
        run.error = run.error or f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    finally:
        stopped.set()
        _kill(km, workdir)
    run.seconds = time.monotonic() - start
    if run.skipped:
        run.error = run.error or (f"notebook time limit of {notebook_seconds} s reached; "
                                  f"{run.skipped} later cell(s) not run")
    run.records = _records(nb.cells[-1])
    run.truncated += [i for i, cell in enumerate(nb.cells[:-1]) if i not in run.truncated and any(
        CAP_MARK in str(o.get("text", "")) for o in cell.get("outputs", []))]
    return run


def _kill(km: AsyncKernelManager, workdir: Path) -> None:
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if process is not None and process.poll() is None:
        process.kill()
    kill_processes(workdir)


def _records(cell: nbformat.NotebookNode) -> dict[str, dict]:
    from course_utils.checks import parse_record

    records: dict[str, dict] = {}
    for output in cell.get("outputs", []):
        data = output.get("data", {}) if isinstance(output, dict) else {}
        text = data.get(PROBE_MIME)
        if isinstance(text, list):
            text = "".join(x for x in text if isinstance(x, str))
        record = parse_record(text)
        if record is not None and isinstance(record.get("exercise"), str):
            records[record["exercise"]] = record
    return records
