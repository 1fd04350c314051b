"""Learner submissions: gathering them from files, folders and zips, telling which lesson each
one is, and noticing cells that were deleted, reordered or duplicated."""

from __future__ import annotations

import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_utils.notebooks.build import course_root, exercise_cells, read

NAME_LESSON = re.compile(r"(?:^|[^0-9])(\d{2})_[A-Za-z]")
ANSWER_EXPR = r"""\bcheck\(\s*["']{exercise}["']\s*,\s*(.+?)\s*\)\s*;?\s*$"""


@dataclass
class Submission:
    """One file handed in: where it is, what it should be called in reports, and any reason it
    cannot be graded."""

    path: Path
    name: str
    problem: str | None = None


@dataclass
class LessonKey:
    """What the grader needs from the instructor's solution: each exercise and the expression
    its check cell passes to `check`."""

    number: str
    exercises: list[tuple[str, str]] = field(default_factory=list)


def _unzip(archive: Path, into: Path) -> list[Submission]:
    found: list[Submission] = []
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = info.filename
                if info.is_dir() or "__MACOSX" in name or Path(name).name.startswith("."):
                    continue
                label = f"{archive.name}:{name}"
                target = (into / name).resolve()
                if not target.is_relative_to(into.resolve()):
                    found.append(Submission(archive, label, "unsafe path inside the zip, skipped"))
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(info))
                found.append(_classify(target, label))
    except zipfile.BadZipFile as exc:
        found.append(Submission(archive, archive.name, f"not a readable zip file: {exc}"))
    return found


def _classify(path: Path, label: str) -> Submission:
    if path.suffix != ".ipynb":
        return Submission(path, label, "not a notebook (.ipynb), skipped")
    return Submission(path, label)


def gather(items: list[str], scratch: Path | None = None) -> list[Submission]:
    """Every submission under the given notebooks, folders and .zip files, in a stable order."""
    scratch = scratch or Path(tempfile.mkdtemp(prefix="course-submissions-"))
    found: list[Submission] = []
    for item in items:
        path = Path(item)
        if not path.exists():
            found.append(Submission(path, item, "no such file or folder"))
        elif path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if any(part.startswith(".") for part in child.relative_to(path).parts):
                    continue
                label = str(child.relative_to(path))
                found += _unzip(child, scratch / label) if child.suffix == ".zip" else [_classify(child, label)]
        elif path.suffix == ".zip":
            found += _unzip(path, scratch / path.stem)
        else:
            found.append(_classify(path, item))
    return found


def lesson_of(path: Path, nb: nbformat.NotebookNode) -> str | None:
    """The lesson a submission belongs to: the id the build wrote into it, else its file name."""
    number = nb.metadata.get("course", {}).get("lesson")
    if number:
        return str(number)
    match = NAME_LESSON.search(path.name)
    return match.group(1) if match else None


def lesson_key(number: str, root: Path | None = None) -> LessonKey:
    """Exercises of a lesson and their answer expressions, from the instructor's solution."""
    matches = sorted(((root or course_root()) / "solutions").glob(f"{number}_*.ipynb"))
    if not matches:
        raise FileNotFoundError(f"lesson {number} does not exist in this course")
    solution = read(matches[0])
    key = LessonKey(number)
    for exercise, where in exercise_cells(solution).items():
        source = solution.cells[where["check"]].source
        match = re.search(ANSWER_EXPR.format(exercise=re.escape(exercise)), source, re.M)
        if not match:
            raise ValueError(f"lesson {number}: cannot read the answer passed to check({exercise!r})")
        key.exercises.append((exercise, match.group(1)))
    return key


def structure_notes(nb: nbformat.NotebookNode, key: LessonKey) -> list[str]:
    """Deleted, duplicated and reordered exercise cells, told apart by the ids the build wrote
    into cell metadata (grading still goes ahead: it does not rely on these cells)."""
    answers, checks = [], []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("course", {})
        if meta.get("role") == "answer":
            answers.append(meta.get("exercise"))
        elif meta.get("role") == "check":
            checks.append(meta.get("exercise"))
    if not answers and not checks:  # an instructor's source: find exercises by their markers
        for exercise, where in exercise_cells(nb).items():
            answers += [exercise] if "answer" in where else []
            checks += [exercise] if "check" in where else []
    if not answers and not checks:
        return ["no exercise cells found (notebook rebuilt by hand?)"]
    notes = []
    for exercise, _ in key.exercises:
        if exercise not in answers:
            notes.append(f"answer cell of {exercise} deleted")
        elif answers.count(exercise) > 1:
            notes.append(f"answer cell of {exercise} duplicated")
        if exercise not in checks:
            notes.append(f"check cell of {exercise} deleted")
        elif checks.count(exercise) > 1:
            notes.append(f"check cell of {exercise} duplicated")
    expected = [e for e, _ in key.exercises]
    present = [e for e in dict.fromkeys(answers) if e in expected]
    if present != [e for e in expected if e in present]:
        notes.append("exercise cells reordered")
    return notes


def answer_errors(nb: nbformat.NotebookNode, exercise: str) -> list[str]:
    """Error names raised by the learner's answer cell(s) for an exercise."""
    indices = {i for i, c in enumerate(nb.cells)
               if c.get("metadata", {}).get("course", {}) == {"exercise": exercise, "role": "answer"}}
    located = exercise_cells(nb).get(exercise, {}).get("answer")
    if located is not None:
        indices.add(located)
    return [o.ename for i in sorted(indices) for o in nb.cells[i].get("outputs", [])
            if o.get("output_type") == "error"]
