"""Lesson notebooks as data: finding them, deriving learner copies, and locating exercises.

`solutions/NN_topic.ipynb` is the single source. A code cell holding `### BEGIN SOLUTION` is an
exercise's answer cell; the next cell calling `check("NN.k", ...)` is its check cell.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError")
CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](\d{2}\.\d+)["']""")
LESSON_NAME = re.compile(r"^(\d{2})_[a-z0-9_]+\.ipynb$")
NB_VERSION = 4


def course_root() -> Path:
    """The repository holding `solutions/`: COURSE_ROOT, else the nearest parent of the working
    directory that has one, else the checkout this package was installed from."""
    if os.environ.get("COURSE_ROOT"):
        return Path(os.environ["COURSE_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "solutions").is_dir() and (folder / "course_utils").is_dir():
            return folder
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Lesson:
    """One lesson: its number, file name, title and budgets, read from the solution notebook."""

    number: str
    name: str
    title: str
    tiny_budget: str
    full_budget: str

    @property
    def filename(self) -> str:
        return f"{self.name}.ipynb"

    def limits(self, profile: str) -> "RunLimits":
        """The time and memory limits for running this lesson in `profile` (see `RunLimits`)."""
        return RunLimits.for_budget(self.full_budget if profile == "full" else None)


@dataclass(frozen=True)
class RunLimits:
    """Default limits of `course run`/`course check`: in `tiny`, 600 s per notebook, 120 s per cell
    and a 6 GB memory cap; in `full`, derived from the lesson's stated budget ("~25 min on a T4,
    ~7 GB"): twice its minutes plus 10 min for downloads, per notebook and per cell (one training
    cell may be most of a lesson), and a host-memory cap of twice its GPU memory, at least 12 GB
    (Colab's host RAM: checkpoints and datasets pass through it on their way to the GPU)."""

    notebook_seconds: int = 600
    cell_seconds: int = 120
    memory_gb: float = 6.0

    @classmethod
    def for_budget(cls, budget: str | None) -> "RunLimits":
        """Tiny defaults for `None`, else the limits a full-profile budget string implies."""
        if budget is None:
            return cls()
        minutes = re.search(r"(\d+(?:\.\d+)?)\s*min", budget)
        seconds = re.search(r"(\d+(?:\.\d+)?)\s*s\b", budget)
        gb = re.search(r"(\d+(?:\.\d+)?)\s*GB", budget)
        stated = float(minutes.group(1)) * 60 if minutes else float(seconds.group(1)) if seconds else None
        if stated is None:
            raise ValueError(f"full-profile budget {budget!r} states no time (\"~N min\")")
        total = int(2 * stated + 600)
        return cls(total, total, max(12.0, 2 * float(gb.group(1))) if gb else 12.0)


def read(path: str | Path) -> nbformat.NotebookNode:
    """Read a notebook, with an error that names the file when it is not valid JSON."""
    try:
        return nbformat.read(str(path), as_version=NB_VERSION)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable notebook ({type(exc).__name__}: {exc})") from exc


def lesson_info(path: Path, nb: nbformat.NotebookNode | None = None) -> Lesson:
    """Title from the first heading, budgets from the notebook's `course` metadata."""
    nb = nb if nb is not None else read(path)
    match = LESSON_NAME.match(path.name)
    if not match:
        raise ValueError(f"{path.name}: lesson files are named NN_topic.ipynb")
    meta = nb.metadata.get("course", {})
    title = next((line.lstrip("# ").strip() for c in nb.cells if c.cell_type == "markdown"
                  for line in c.source.splitlines() if line.startswith("# ")), path.stem)
    return Lesson(match.group(1), path.stem, title, meta.get("tiny_budget", "?"),
                  meta.get("full_budget", "?"))


def lessons(root: Path | None = None) -> list[Lesson]:
    """All lessons in order, from `solutions/`."""
    folder = (root or course_root()) / "solutions"
    return [lesson_info(p) for p in sorted(folder.glob("[0-9][0-9]_*.ipynb"))]


def find_notebooks(selectors: list[str], folder: str = "solutions",
                   root: Path | None = None) -> list[Path]:
    """Resolve lesson numbers ("1", "01"), names ("01_why_finetune", "why_finetune") or paths."""
    root = root or course_root()
    available = sorted((root / folder).glob("[0-9][0-9]_*.ipynb"))
    if not selectors:
        return available
    found: list[Path] = []
    for sel in selectors:
        path = Path(sel)
        if path.suffix == ".ipynb" and path.exists():
            found.append(path.resolve())
            continue
        key = sel.zfill(2) if sel.isdigit() else sel.removesuffix(".ipynb")
        hits = [p for p in available if p.stem == key or p.stem[:2] == key or p.stem[3:] == key]
        if not hits:
            names = ", ".join(p.stem for p in available)
            raise FileNotFoundError(f"no lesson matches {sel!r}; available: {names}")
        found += hits
    return found


def _strip_line_block(source: str) -> str:
    out: list[str] = []
    inside = False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"nested {BEGIN!r}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out += [indent + s for s in STUB]
        elif stripped == END:
            if not inside:
                raise ValueError(f"{END!r} without {BEGIN!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN!r} without {END!r}")
    return "\n".join(out)


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Outputs, execution counts and per-run cell metadata removed: what we commit."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "collapsed", "scrolled", "ExecuteTime"):
            cell.metadata.pop(key, None)
    return nb


def exercise_cells(nb: nbformat.NotebookNode) -> dict[str, dict[str, int]]:
    """Map each exercise id to its answer and check cell indices (by metadata, else by markers)."""
    found: dict[str, dict[str, int]] = {}
    pending_answer: int | None = None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("course", {})
        if meta.get("role") == "answer" or BEGIN in cell.source:
            pending_answer = index
            if meta.get("exercise"):
                found.setdefault(meta["exercise"], {})["answer"] = index
        ids = [meta["exercise"]] if meta.get("role") == "check" else CHECK_CALL.findall(cell.source)
        for exercise in ids:
            entry = found.setdefault(exercise, {})
            entry.setdefault("check", index)
            if pending_answer is not None:
                entry.setdefault("answer", pending_answer)
        if ids:
            pending_answer = None
    return found


def to_lesson(solution: nbformat.NotebookNode, number: str) -> nbformat.NotebookNode:
    """The learner copy: answers replaced by stubs, outputs stripped, cells tagged with roles so
    the grader can find exercises even after a learner edits the code."""
    nb = clean(solution)
    roles = exercise_cells(nb)
    for exercise, where in roles.items():
        if "answer" not in where:
            raise ValueError(f"exercise {exercise}: its check cell has no answer cell before it")
        nb.cells[where["answer"]].metadata["course"] = {"exercise": exercise, "role": "answer"}
        nb.cells[where["check"]].metadata["course"] = {"exercise": exercise, "role": "check"}
    for cell in nb.cells:
        if cell.cell_type == "code" and BEGIN in cell.source:
            cell.source = _strip_line_block(cell.source)
    nb.metadata.setdefault("course", {})["lesson"] = number
    return nb


def dumps(nb: nbformat.NotebookNode) -> str:
    """Serialise exactly as we commit notebooks, so comparisons are byte-for-byte."""
    return nbformat.writes(nb, version=NB_VERSION) + "\n"


def with_rendered_cells(nb: nbformat.NotebookNode, path: Path,
                        folder: str = "solutions") -> nbformat.NotebookNode:
    """Render the parts that name the repository from one template: the Colab badge in cell 1
    and the Colab set-up cell 2, so a changed URL or version reaches every notebook."""
    from course_utils.notebooks.colab import BADGE_PREFIX, badge, setup_cell_source

    if len(nb.cells) < 3 or nb.cells[0].cell_type != "markdown" or nb.cells[1].cell_type != "code":
        raise ValueError(f"{path.name}: cell 1 must be the title (markdown) and cell 2 the Colab "
                         "set-up (code)")
    if BADGE_PREFIX not in nb.cells[0].source:
        raise ValueError(f"{path.name}: cell 1 has no line starting with {BADGE_PREFIX!r}")
    nb = copy.deepcopy(nb)
    nb.cells[0].source = "\n".join(badge(folder, path.name) if line.startswith(BADGE_PREFIX)
                                   else line for line in nb.cells[0].source.splitlines())
    nb.cells[1].source = setup_cell_source()
    return nb


def build(root: Path | None = None, check_only: bool = False) -> list[Path]:
    """Derive `lessons/` from `solutions/`; returns the files that changed (or would change)."""
    root = root or course_root()
    changed: list[Path] = []
    for src in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb")):
        solution = read(src)
        info = lesson_info(src, solution)
        lesson = to_lesson(with_rendered_cells(solution, src, "lessons"), info.number)
        targets = {src: dumps(clean(with_rendered_cells(solution, src))),
                   root / "lessons" / src.name: dumps(lesson)}
        for path, text in targets.items():
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                changed.append(path)
                if not check_only:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text, encoding="utf-8")
    names = {p.name for p in (root / "solutions").glob("[0-9][0-9]_*.ipynb")}
    for stale in (root / "lessons").glob("*.ipynb"):
        if stale.name not in names:
            changed.append(stale)
            if not check_only:
                stale.unlink()
    return changed
