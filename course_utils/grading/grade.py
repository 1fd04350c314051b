"""Grade learner notebooks exercise by exercise, without trusting anything the notebook does.

Each submission runs in its own confined kernel (see `kernel` and `sandbox`) in a fresh scratch
copy. The kernel only hands back data: each exercise's probe record. Verdicts, hidden tests and
credit are computed here, in the grader's process. Reports: a terminal table, CSV, JSON, HTML.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from course_utils import checks
from course_utils.checks import ERROR, NOT_ATTEMPTED, PASSED, Result
from course_utils.grading import sandbox as sandboxes
from course_utils.grading import wire
from course_utils.grading.kernel import THREAD_VARIABLES, probe_cell, run_confined
from course_utils.grading.submissions import (Submission, answer_errors, lesson_key, lesson_of,
                                              structure_notes)
from course_utils.notebooks.build import read


@dataclass
class Limits:
    """How far one submission may go before the grader stops it, and how it is confined; a limit
    left at None comes from the lesson's budget for the profile (`course_utils.notebooks.build.RunLimits`)."""

    notebook_seconds: int | None = None
    cell_seconds: int | None = None
    check_seconds: int = 30
    memory_gb: float | None = None
    profile: str = "tiny"
    extra_checks: str | None = None
    sandbox: str = "auto"
    processes: int = 256
    environment: dict[str, str] = field(default_factory=dict)  # extra kernel variables, e.g. a rehearsal switch
    machine_reports: bool = False  # also run cells whose role is `machine-report` (see kernel.machine_report)

    def for_lesson(self, number: str) -> "Limits":
        """These limits with every unset one filled in from lesson `number`'s stated budget."""
        from course_utils.notebooks.build import find_notebooks, lesson_info

        default = lesson_info(find_notebooks([number])[0]).limits(self.profile)
        return replace(self, notebook_seconds=self.notebook_seconds or default.notebook_seconds,
                       cell_seconds=self.cell_seconds or default.cell_seconds,
                       memory_gb=self.memory_gb or default.memory_gb)


@dataclass
class Grade:
    """One submission's verdicts, the reason it could not be (fully) graded, and notes about
    its structure."""

    path: str
    lesson: str | None
    results: list[Result] = field(default_factory=list)
    problem: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "cell N: Name: value" per learner-cell error
    reports_skipped: list[int] = field(default_factory=list)  # machine-report cells not run

    @property
    def graded(self) -> bool:
        return bool(self.results)

    @property
    def ok(self) -> bool:
        """Full credit: every exercise passed and nothing stopped the run (the exit code)."""
        return self.problem is None and bool(self.results) and all(r.status == PASSED for r in self.results)

    @property
    def score(self) -> float:
        return sum(_credit(r) for r in self.results)


def _credit(result: Result) -> float:
    value = result.credit if isinstance(result.credit, (int, float)) else 0.0
    return min(1.0, max(0.0, float(value))) if value == value else 0.0


@functools.lru_cache(maxsize=None)
def resolve_sandbox(kind: str) -> sandboxes.Sandbox:
    """The sandbox a `--sandbox` choice gives on this machine (probed once per process)."""
    return sandboxes.choose(kind)


def load_extras(path: str | None) -> dict[str, list[tuple[list, Callable]]]:
    """Hidden tests from an instructor's file, read only here, in the grader's process:

        @extra("00.2", calls=[((6, 0),), ((12, 0),)])
        def old_and_new_gpus(outputs):          # the answer's return values, as data
            expect(outputs == ["fp16", "bf16"], "a P100 (6.0) has no bf16")
    """
    extras: dict[str, list[tuple[list, Callable]]] = {}
    if not path:
        return extras

    def extra(exercise: str, calls: list) -> Callable:
        def register(func: Callable) -> Callable:
            extras.setdefault(exercise, []).append((wire.encode(list(calls)), func))
            return func
        return register

    namespace = {"CheckFailed": checks.CheckFailed, "expect": checks.expect, "extra": extra}
    source = Path(path).read_text(encoding="utf-8")
    exec(compile(source, str(path), "exec"), namespace)
    return extras


def _verdicts(key, run, extras) -> list[Result]:
    results = []
    for exercise, answer in key.exercises:
        record = run.records.get(exercise)
        if record is None:
            results.append(Result(exercise, ERROR, f"not graded: {run.error or 'the run stopped early'}"))
        elif record.get("outcome") == "missing":
            errors = answer_errors(run.notebook, exercise)
            if "NotImplementedError" in errors:
                results.append(Result(exercise, NOT_ATTEMPTED, "the stub still raises NotImplementedError"))
            else:
                detail = f"; your answer cell raised {errors[0]}" if errors else ""
                results.append(Result(exercise, ERROR, f"no `{answer}` to check{detail}"))
        else:
            results.append(checks.judge_record(exercise, record, [j for _, j in extras.get(exercise, [])]))
    return results


def _sanitize(nb) -> list[str]:
    """Drop course metadata of the wrong type, so a malformed notebook is graded, not fatal."""
    notes = []
    if not isinstance(nb.metadata.get("course", {}), dict):
        nb.metadata.pop("course")
        notes.append("notebook metadata `course` is not an object; ignored")
    for i, cell in enumerate(nb.cells):
        if not isinstance(cell.get("metadata", {}).get("course", {}), dict):
            cell.metadata.pop("course")
            notes.append(f"cell {i}: metadata `course` is not an object; ignored")
        if not isinstance(cell.get("source", ""), str):
            raise ValueError(f"cell {i} has no text source")
    return notes


def grade(path: Path | str, limits: Limits | None = None, name: str | None = None) -> Grade:
    """Run one submission in a fresh confined kernel and grade every exercise of its lesson."""
    limits = limits or Limits()
    label = name or str(path)
    try:
        return _grade(Path(path), limits, label)
    except Exception as exc:  # one malformed submission must never stop a class
        return Grade(label, None, problem=f"could not be graded: {type(exc).__name__}: {exc}"[:300])


def _grade(path: Path, limits: Limits, label: str) -> Grade:
    try:
        nb = read(path)
        sanitized = _sanitize(nb)
        lesson = lesson_of(path, nb)
        if lesson is None:
            return Grade(label, None, problem="cannot tell which lesson this notebook is "
                                              "(no lesson id in its metadata, no NN_ in its name)")
        key = lesson_key(lesson)
        limits = limits.for_lesson(lesson)
    except (ValueError, FileNotFoundError) as exc:
        return Grade(label, None, problem=str(exc))
    notes = sanitized + structure_notes(nb, key)
    extras = load_extras(limits.extra_checks)
    box = resolve_sandbox(limits.sandbox)
    exercises = [e for e, _ in key.exercises]
    probes = probe_cell(exercises, {e: [calls for calls, _ in extras.get(e, [])] for e in exercises},
                        limits.check_seconds)
    probe_budget = 20 + limits.check_seconds * sum(1 + len(extras.get(e, [])) for e in exercises)
    with tempfile.TemporaryDirectory(prefix="course-work-") as work:
        workdir = Path(work)
        shutil.copy(path, workdir / "submission.ipynb")
        run = run_confined(nb, workdir, box, limits.profile, limits.notebook_seconds,
                           limits.cell_seconds, probe_budget, limits.memory_gb, limits.processes,
                           probes, limits.environment, limits.machine_reports)
    results = _verdicts(key, run, extras)
    learner_cells = run.notebook.cells[:-1]
    if run.interrupted:
        cells = [str(i) for i in run.interrupted if i < len(learner_cells)]
        if cells:
            notes.append(f"cell(s) {', '.join(cells)} interrupted after {limits.cell_seconds} s")
    memory = [str(i) for i, c in enumerate(learner_cells)
              if any(o.get("ename") == "MemoryError" for o in c.get("outputs", []))]
    if memory:
        notes.append(f"cell(s) {', '.join(memory)} hit the memory cap of {limits.memory_gb:g} GB")
    if run.truncated:
        notes.append(f"output of cell(s) {', '.join(map(str, run.truncated))} capped")
    errors = [f"cell {i}: {o.get('ename')}: {str(o.get('evalue', ''))[:200]}"
              for i, c in enumerate(learner_cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    return Grade(label, lesson, results, problem=run.error, seconds=run.seconds, notes=notes,
                 errors=errors, reports_skipped=run.reports_skipped)


def _grade_one(args: tuple[Submission, Limits]) -> Grade:
    submission, limits = args
    if submission.problem:
        return Grade(submission.name, None, problem=submission.problem)
    return grade(submission.path, limits, submission.name)


def share_cores(limits: Limits, jobs: int) -> Limits:
    """With `jobs` kernels at once, each gets its share of the cores as torch threads (more only
    wait for each other), unless the grader or the limits already chose a thread count."""
    if jobs <= 1 or any(k in limits.environment or k in os.environ for k in THREAD_VARIABLES):
        return limits
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    return replace(limits, environment={**limits.environment, **dict.fromkeys(THREAD_VARIABLES, threads)})


def grade_all(submissions: list[Submission], limits: Limits, jobs: int = 1,
              progress: bool = True) -> list[Grade]:
    """Grade many submissions, at most `jobs` at a time, each in its own process and kernel."""
    from tqdm.auto import tqdm

    limits = share_cores(limits, jobs)
    work = [(s, limits) for s in submissions]
    bar = tqdm(total=len(work), desc="grading", disable=not progress or len(work) < 2)
    results: list[Grade] = []
    if jobs <= 1:
        for item in work:
            results.append(_grade_one(item))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for graded in pool.map(_grade_one, work):
                results.append(graded)
                bar.update()
    bar.close()
    return results


_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def safe(text: object) -> str:
    """Text fit for a terminal: control characters (newlines, ANSI escapes) shown escaped."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def table(grades: list[Grade]) -> str:
    """A plain-text table: one row per submission, one column per exercise."""
    rows = [["submission", "lesson", "score", "verdicts"]]
    for g in grades:
        if not g.graded:
            rows.append([safe(g.path), safe(g.lesson or "?"), "-", f"not graded: {safe(g.problem)}"])
            continue
        cells = "  ".join(f"{safe(r.exercise)}:{safe(r.status)}"
                          + (f"({_credit(r):.2f})" if 0 < _credit(r) < 1 else "") for r in g.results)
        if g.problem:
            cells += f"  (stopped: {safe(g.problem)})"
        rows.append([safe(g.path), safe(g.lesson or "?"), f"{g.score:g}/{len(g.results)}", cells])
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows)


def details(grades: list[Grade]) -> str:
    """The messages and hints behind every verdict that is not a pass, and structure notes."""
    lines = []
    for g in grades:
        for note in g.notes:
            lines.append(f"{safe(g.path)}: note: {safe(note)}")
        for r in g.results:
            if r.status != PASSED:
                lines.append(f"{safe(g.path)} {safe(r.exercise)} {safe(r.status)}: {safe(r.message)}"
                             + (f" (hint: {safe(r.hint)})" if r.hint else ""))
    return "\n".join(lines)


def rows(grades: list[Grade]) -> list[dict]:
    """One flat record per submission and exercise, the shape of the CSV and JSON reports."""
    out = []
    for g in grades:
        for r in g.results or [Result("-", ERROR, g.problem or "")]:
            out.append({"submission": g.path, "lesson": g.lesson, "problem": g.problem,
                        "notes": "; ".join(g.notes), "seconds": round(g.seconds, 1),
                        **asdict(r), "credit": _credit(r)})
    return out


def write_report(grades: list[Grade], path: Path) -> None:
    """Save verdicts as CSV, JSON or HTML, chosen by the file suffix."""
    import csv

    if path.suffix == ".html":
        from course_utils.grading.report import html_report

        path.write_text(html_report(grades), encoding="utf-8")
        return
    records = rows(grades)
    if path.suffix == ".json":
        path.write_text(json.dumps(records, indent=2), encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(records[0]) if records else ["submission"])
        writer.writeheader()
        writer.writerows(records)
