"""Learner submissions: gathering them from files, folders and zips, telling which lesson each
one is, and noticing cells that were deleted, reordered or duplicated."""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_utils import checks
from course_utils.notebooks.build import exercise_cells

NAME_LESSON = re.compile(r"(?:^|[^0-9])(\d{2})_[A-Za-z]")
LESSON_ID = re.compile(r"\d\d")
ZIP_TOTAL_BYTES = 512 * 2**20  # everything extracted from one archive
ZIP_ENTRY_BYTES = 64 * 2**20  # one notebook


@dataclass
class Submission:
    """One file handed in: where it is, what it should be called in reports, and any reason it
    cannot be graded."""

    path: Path
    name: str
    problem: str | None = None


@dataclass
class LessonKey:
    """What the grader needs to grade a lesson: each exercise id and the notebook variable that
    holds its answer, both from the checker registry."""

    number: str
    exercises: list[tuple[str, str]] = field(default_factory=list)


def _unzip(archive: Path, into: Path) -> list[Submission]:
    """Extract the notebooks of one archive, streaming each entry with a size cap."""
    found: list[Submission] = []
    total = 0
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
                if not name.endswith(".ipynb"):
                    found.append(Submission(archive, label, "not a notebook (.ipynb), skipped"))
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                written, problem = 0, None
                with zf.open(info) as source, target.open("wb") as sink:
                    while chunk := source.read(1 << 20):
                        written += len(chunk)
                        if written > ZIP_ENTRY_BYTES or total + written > ZIP_TOTAL_BYTES:
                            problem = (f"larger than {ZIP_ENTRY_BYTES >> 20} MB" if written > ZIP_ENTRY_BYTES
                                       else f"the archive holds more than {ZIP_TOTAL_BYTES >> 20} MB")
                            break
                        sink.write(chunk)
                total += written
                if problem:
                    target.unlink()
                    found.append(Submission(archive, label, f"skipped: {problem}"))
                    if total > ZIP_TOTAL_BYTES:
                        break
                    continue
                found.append(_classify(target, label))
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError) as exc:
        found.append(Submission(archive, archive.name, f"not a readable zip file: {exc}"))
    return found


def _classify(path: Path, label: str) -> Submission:
    if path.suffix != ".ipynb":
        return Submission(path, label, "not a notebook (.ipynb), skipped")
    return Submission(path, label)


class Gathered(list):
    """Submissions, plus the scratch folder holding notebooks extracted from zips (removed by
    `cleanup`, or on leaving a `with` block)."""

    scratch: Path | None = None

    def cleanup(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def __enter__(self) -> "Gathered":
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


def gather(items: list[str], scratch: Path | None = None) -> Gathered:
    """Every submission under the given notebooks, folders and .zip files, in a stable order;
    extracted copies live in a scratch folder until `cleanup()`."""
    found = Gathered()
    if scratch is None and any(Path(i).suffix == ".zip" or Path(i).is_dir() for i in items):
        scratch = found.scratch = Path(tempfile.mkdtemp(prefix="course-submissions-"))
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


def _course_meta(node) -> dict:
    meta = node.get("metadata") if isinstance(node, dict) else None
    course = meta.get("course") if isinstance(meta, dict) else None
    return course if isinstance(course, dict) else {}


def lesson_of(path: Path, nb: nbformat.NotebookNode) -> str | None:
    """The lesson a submission belongs to: the id the build wrote into it, else its file name.
    A metadata id that is not two digits is an error, never a path."""
    number = _course_meta(nb).get("lesson")
    if number not in (None, ""):
        if not isinstance(number, str) or not LESSON_ID.fullmatch(number):
            raise ValueError(f"the notebook's lesson id {str(number)[:40]!r} is not two digits")
        return number
    match = NAME_LESSON.search(path.name)
    return match.group(1) if match else None


def lesson_key(number: str) -> LessonKey:
    """Exercises of a lesson and the variable holding each answer, from the checker registry."""
    if not isinstance(number, str) or not LESSON_ID.fullmatch(number):
        raise ValueError(f"not a lesson id: {str(number)[:40]!r}")
    exercises = checks.registered(number)
    if not exercises:
        raise FileNotFoundError(f"lesson {number} does not exist in this course")
    return LessonKey(number, [(e, checks.lookup(e).answer) for e in exercises])


def structure_notes(nb: nbformat.NotebookNode, key: LessonKey) -> list[str]:
    """Deleted, duplicated and reordered exercise cells, told apart by the ids the build wrote
    into cell metadata (grading still goes ahead: it does not rely on these cells)."""
    answers, checks = [], []
    for cell in nb.cells:
        meta = _course_meta(cell)
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
               if _course_meta(c) == {"exercise": exercise, "role": "answer"}}
    located = exercise_cells(nb).get(exercise, {}).get("answer")
    if located is not None:
        indices.add(located)
    return [str(o.get("ename")) for i in sorted(indices) for o in nb.cells[i].get("outputs", [])
            if isinstance(o, dict) and o.get("output_type") == "error"]
