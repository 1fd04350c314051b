"""Grade executed notebooks exercise by exercise from the check records their cells emit."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from .checks import ERROR, MIME, NOT_ATTEMPTED, PASSED, Result
from .notebooks import LESSON_NAME, course_root, exercise_cells, read
from .runner import execute


@dataclass
class Grade:
    """One submission's verdicts, or the reason it could not be graded."""

    path: str
    lesson: str | None
    results: list[Result] = field(default_factory=list)
    problem: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.problem is None and all(r.status in (PASSED, NOT_ATTEMPTED) for r in self.results)


def lesson_of(path: Path, nb: nbformat.NotebookNode) -> str | None:
    """The lesson a submission belongs to: the id the build wrote into it, else its file name."""
    number = nb.metadata.get("course", {}).get("lesson")
    if number:
        return str(number)
    match = LESSON_NAME.match(path.name)
    return match.group(1) if match else None


def expected_exercises(lesson: str, root: Path | None = None) -> list[str]:
    """Exercise ids of a lesson, in notebook order, from its solution notebook."""
    matches = sorted(((root or course_root()) / "solutions").glob(f"{lesson}_*.ipynb"))
    if not matches:
        raise FileNotFoundError(f"no solution notebook for lesson {lesson}")
    return list(exercise_cells(read(matches[0])))


def _errors(cell: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def verdicts(nb: nbformat.NotebookNode, exercises: list[str]) -> list[Result]:
    """Read each exercise's verdict from an executed notebook; cells that crashed before a check
    could report are told apart: a stub left in place is "not attempted", anything else "error"."""
    records: dict[str, Result] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {}).get(MIME)
            if data:
                records[data["exercise"]] = Result(**data)
    where = exercise_cells(nb)
    results = []
    for exercise in exercises:
        if exercise in records:
            results.append(records[exercise])
            continue
        cells = where.get(exercise, {})
        answer_errors = _errors(nb.cells[cells["answer"]]) if "answer" in cells else []
        check_errors = _errors(nb.cells[cells["check"]]) if "check" in cells else []
        if any(e.ename == "NotImplementedError" for e in answer_errors):
            results.append(Result(exercise, NOT_ATTEMPTED, "the stub still raises NotImplementedError"))
        elif answer_errors or check_errors:
            err = (answer_errors or check_errors)[0]
            results.append(Result(exercise, ERROR, f"{err.ename}: {err.evalue}"))
        elif "check" not in cells:
            results.append(Result(exercise, ERROR, "its check cell is missing"))
        else:
            results.append(Result(exercise, ERROR, "the check cell produced no verdict"))
    return results


def grade(path: Path, timeout: int = 300, profile: str = "tiny") -> Grade:
    """Execute one submission in a fresh kernel and grade every exercise of its lesson."""
    try:
        nb = read(path)
        lesson = lesson_of(path, nb)
        if lesson is None:
            return Grade(str(path), None, problem="cannot tell which lesson this notebook is")
        exercises = expected_exercises(lesson)
    except (ValueError, FileNotFoundError) as exc:
        return Grade(str(path), None, problem=str(exc))
    run = execute(path, profile=profile, timeout=timeout, allow_errors=True)
    graded = Grade(str(path), lesson, verdicts(run.notebook, exercises), seconds=run.seconds)
    if run.error:
        graded.problem = run.error
    return graded


def table(grades: list[Grade]) -> str:
    """A plain-text table: one row per submission, one column per exercise."""
    rows = [["submission", "lesson", "score", "verdicts"]]
    for g in grades:
        if g.problem and not g.results:
            rows.append([Path(g.path).name, g.lesson or "?", "-", f"not graded: {g.problem}"])
            continue
        passed = sum(r.passed for r in g.results)
        cells = "  ".join(f"{r.exercise}:{r.status}" for r in g.results)
        if g.problem:
            cells += f"  (stopped: {g.problem})"
        rows.append([Path(g.path).name, g.lesson or "?", f"{passed}/{len(g.results)}", cells])
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows)


def details(grades: list[Grade]) -> str:
    """The messages and hints behind every verdict that is not a pass."""
    lines = []
    for g in grades:
        for r in g.results:
            if r.status != PASSED:
                lines.append(f"{Path(g.path).name} {r.exercise} {r.status}: {r.message}"
                             + (f" (hint: {r.hint})" if r.hint else ""))
    return "\n".join(lines)


def write_report(grades: list[Grade], path: Path) -> None:
    """Save verdicts as CSV (one row per exercise) or JSON, chosen by the file suffix."""
    rows = [{"submission": g.path, "lesson": g.lesson, "problem": g.problem, **asdict(r)}
            for g in grades for r in (g.results or [Result("-", ERROR, g.problem or "")])]
    if path.suffix == ".json":
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["submission"])
        writer.writeheader()
        writer.writerows(rows)
