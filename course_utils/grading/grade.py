"""Grade learner notebooks exercise by exercise, without trusting anything the notebook prints.

Each submission runs in its own kernel in a fresh scratch copy, fenced by time and memory
limits; the grader then evaluates the answers itself (see `grader_kernel`). Reports: a terminal
table, CSV, JSON and HTML.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nbformat.v4 import new_code_cell

from course_utils.checks import ERROR, NOT_ATTEMPTED, PASSED, Result
from course_utils.grading.kernel import cells as grader_cells
from course_utils.notebooks.build import read
from course_utils.notebooks.runner import execute_notebook
from course_utils.grading.submissions import Submission, answer_errors, lesson_key, lesson_of, structure_notes


@dataclass
class Limits:
    """How far one submission may go before the grader stops it; a limit left at None comes from
    the lesson's budget for the profile (`course_utils.notebooks.build.RunLimits`)."""

    notebook_seconds: int | None = None
    cell_seconds: int | None = None
    check_seconds: int = 30
    memory_gb: float | None = None
    profile: str = "tiny"
    extra_checks: str | None = None

    def for_lesson(self, number: str) -> "Limits":
        """These limits with every unset one filled in from lesson `number`'s stated budget."""
        from dataclasses import replace

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

    @property
    def graded(self) -> bool:
        return bool(self.results)

    @property
    def ok(self) -> bool:
        return self.problem is None and all(r.status in (PASSED, NOT_ATTEMPTED) for r in self.results)

    @property
    def score(self) -> float:
        return sum(r.credit or 0.0 for r in self.results)


def _from_records(lines: list[str], key, executed, run_error: str | None) -> list[Result]:
    records = {}
    for line in lines:
        try:
            record = json.loads(line)
            records[record["exercise"]] = record
        except (ValueError, KeyError):
            continue
    results = []
    for exercise, expression in key.exercises:
        record = records.get(exercise)
        errors = answer_errors(executed, exercise) if executed is not None else []
        if record is None:
            results.append(Result(exercise, ERROR, f"not graded: {run_error or 'the run stopped early'}"))
        elif record["status"] == "missing":
            if "NotImplementedError" in errors:
                results.append(Result(exercise, NOT_ATTEMPTED, "the stub still raises NotImplementedError"))
            else:
                detail = f"; your answer cell raised {errors[0]}" if errors else ""
                results.append(Result(exercise, ERROR,
                                      f"no `{expression}` to check ({record['message']}){detail}"))
        else:
            results.append(Result(exercise, record["status"], record.get("message", ""),
                                  record.get("hint", ""), record.get("credit")))
    return results


def grade(path: Path | str, limits: Limits | None = None, name: str | None = None) -> Grade:
    """Run one submission in a fresh kernel and grade every exercise of its lesson."""
    limits = limits or Limits()
    path = Path(path)
    label = name or str(path)
    try:
        nb = read(path)
        lesson = lesson_of(path, nb)
        if lesson is None:
            return Grade(label, None, problem="cannot tell which lesson this notebook is "
                                              "(no lesson id in its metadata, no NN_ in its name)")
        key = lesson_key(lesson)
        limits = limits.for_lesson(lesson)
    except (ValueError, FileNotFoundError) as exc:
        return Grade(label, None, problem=str(exc))
    notes = structure_notes(nb, key)
    with tempfile.TemporaryDirectory(prefix="course-grade-") as private, \
            tempfile.TemporaryDirectory(prefix="course-work-") as work:
        workdir = Path(work)
        shutil.copy(path, workdir / "submission.ipynb")
        result_file = Path(private) / "results.jsonl"
        first, last = grader_cells(key.exercises, result_file,
                                   Path(limits.extra_checks).resolve() if limits.extra_checks else None,
                                   limits.check_seconds)
        nb.cells = [new_code_cell(first, metadata={"course_grader": True})] + nb.cells + \
                   [new_code_cell(last, metadata={"course_grader": True})]
        final_budget = 30 + limits.check_seconds * len(key.exercises) * 2
        run = execute_notebook(
            nb, workdir, profile=limits.profile, timeout=limits.notebook_seconds,
            cell_timeout=limits.cell_seconds, allow_errors=True, memory_gb=limits.memory_gb,
            cell_budget=lambda c: final_budget if c.metadata.get("course_grader") else None)
        lines = result_file.read_text().splitlines() if result_file.exists() else []
    results = _from_records(lines, key, run.notebook, run.error)
    timed_out = [i for i, c in enumerate(run.notebook.cells[1:-1], 1)
                 if any(o.get("ename") == "KeyboardInterrupt" for o in c.get("outputs", []))]
    if timed_out:
        notes.append(f"cell(s) {', '.join(map(str, timed_out))} interrupted after "
                     f"{limits.cell_seconds} s")
    return Grade(label, lesson, results, problem=run.error, seconds=run.seconds, notes=notes)


def _grade_one(args: tuple[Submission, Limits]) -> Grade:
    submission, limits = args
    if submission.problem:
        return Grade(submission.name, None, problem=submission.problem)
    return grade(submission.path, limits, submission.name)


def grade_all(submissions: list[Submission], limits: Limits, jobs: int = 1,
              progress: bool = True) -> list[Grade]:
    """Grade many submissions, at most `jobs` at a time, each in its own process and kernel."""
    from tqdm.auto import tqdm

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


def table(grades: list[Grade]) -> str:
    """A plain-text table: one row per submission, one column per exercise."""
    rows = [["submission", "lesson", "score", "verdicts"]]
    for g in grades:
        if not g.graded:
            rows.append([g.path, g.lesson or "?", "-", f"not graded: {g.problem}"])
            continue
        cells = "  ".join(f"{r.exercise}:{r.status}" + (f"({r.credit:.2f})" if 0 < (r.credit or 0) < 1 else "")
                          for r in g.results)
        if g.problem:
            cells += f"  (stopped: {g.problem})"
        rows.append([g.path, g.lesson or "?", f"{g.score:g}/{len(g.results)}", cells])
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows)


def details(grades: list[Grade]) -> str:
    """The messages and hints behind every verdict that is not a pass, and structure notes."""
    lines = []
    for g in grades:
        for note in g.notes:
            lines.append(f"{g.path}: note: {note}")
        for r in g.results:
            if r.status != PASSED:
                lines.append(f"{g.path} {r.exercise} {r.status}: {r.message}"
                             + (f" (hint: {r.hint})" if r.hint else ""))
    return "\n".join(lines)


def rows(grades: list[Grade]) -> list[dict]:
    """One flat record per submission and exercise, the shape of the CSV and JSON reports."""
    out = []
    for g in grades:
        for r in g.results or [Result("-", ERROR, g.problem or "")]:
            out.append({"submission": g.path, "lesson": g.lesson, "problem": g.problem,
                        "notes": "; ".join(g.notes), "seconds": round(g.seconds, 1), **asdict(r)})
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
