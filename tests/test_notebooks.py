import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_utils.notebooks import build as notebooks
from course_utils.notebooks.build import BEGIN, END

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def test_stub_keeps_indentation_and_code_around_it():
    source = f"def f(x):\n    y = 1\n    {BEGIN}\n    return x + y\n    {END}\nprint('after')"
    assert notebooks._strip_line_block(source) == (
        "def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError\nprint('after')")


@pytest.mark.parametrize("source, words", [
    (f"{BEGIN}\nx = 1", "without"),
    (f"x = 1\n{END}", "without"),
    (f"{BEGIN}\n{BEGIN}\n{END}", "nested"),
])
def test_unbalanced_markers_are_errors(source, words):
    with pytest.raises(ValueError, match=words):
        notebooks._strip_line_block(source)


def _lesson(tmp_path: Path, answer_src: str) -> Path:
    root = tmp_path / "course"
    (root / "solutions").mkdir(parents=True)
    nb = new_notebook(metadata={"course": {"tiny_budget": "1 s", "full_budget": "1 s"}})
    nb.cells = [new_markdown_cell("# Lesson 00 — demo\n\n[![Open In Colab](x)](y)"),
                new_code_cell("pass"), new_code_cell("x = 1"), new_code_cell(answer_src),
                new_code_cell('check("00.1", f);')]
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="noise")]
    nbformat.write(nb, str(root / "solutions" / "00_demo.ipynb"))
    return root


def test_build_writes_stubbed_lesson_and_check_detects_drift(tmp_path):
    root = _lesson(tmp_path, f"def f():\n    {BEGIN}\n    return 42\n    {END}")
    assert len(notebooks.build(root, check_only=True)) == 2
    notebooks.build(root)
    assert notebooks.build(root, check_only=True) == []
    lesson = nbformat.read(str(root / "lessons" / "00_demo.ipynb"), 4)
    assert "return 42" not in lesson.cells[3].source
    assert "raise NotImplementedError" in lesson.cells[3].source
    assert lesson.cells[3].metadata["course"] == {"exercise": "00.1", "role": "answer"}
    assert lesson.cells[4].metadata["course"] == {"exercise": "00.1", "role": "check"}
    assert lesson.metadata["course"]["lesson"] == "00"
    assert all(not c.get("outputs") for c in lesson.cells if c.cell_type == "code")
    assert "colab.research.google.com/github/" in lesson.cells[0].source
    assert "lessons/00_demo.ipynb" in lesson.cells[0].source
    assert "google.colab" in lesson.cells[1].source
    # hand-editing the learner copy is drift
    path = root / "lessons" / "00_demo.ipynb"
    path.write_text(path.read_text().replace("YOUR CODE HERE", "answer"))
    assert notebooks.build(root, check_only=True) == [path]


def test_stale_lessons_are_reported(tmp_path):
    root = _lesson(tmp_path, f"def f():\n    {BEGIN}\n    return 42\n    {END}")
    notebooks.build(root)
    shutil.copy(root / "lessons" / "00_demo.ipynb", root / "lessons" / "09_gone.ipynb")
    assert notebooks.build(root, check_only=True) == [root / "lessons" / "09_gone.ipynb"]


def test_check_without_answer_cell_is_a_build_error(tmp_path):
    root = _lesson(tmp_path, "def f():\n    return 42")
    with pytest.raises(ValueError, match="no answer cell"):
        notebooks.build(root)


def test_repository_lessons_are_in_sync_with_solutions():
    assert notebooks.build(ROOT, check_only=True) == []


@pytest.mark.parametrize("path", SOLUTIONS + sorted((ROOT / "lessons").glob("*.ipynb")),
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_notebooks_are_committed_clean(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_notebook_conventions(path):
    nb = notebooks.read(path)
    info = notebooks.lesson_info(path, nb)
    assert nb.cells[0].source.startswith(f"# Lesson {info.number} — ")
    assert "google.colab" in nb.cells[1].source
    assert "setup(" in nb.cells[2].source, "cell 3 must resolve the profile with setup()"
    assert info.tiny_budget != "?" and info.full_budget != "?"
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "from_pretrained(\"" in cell.source:
            pytest.fail(f"cell {index} loads from the hub directly; use course_utils loaders")


def test_find_notebooks_accepts_numbers_names_and_paths():
    first = SOLUTIONS[0]
    assert notebooks.find_notebooks([str(int(first.name[:2]))], root=ROOT) == [first]
    assert notebooks.find_notebooks([first.stem], root=ROOT) == [first]
    assert notebooks.find_notebooks([first.stem[3:]], root=ROOT) == [first]
    assert notebooks.find_notebooks([str(first)], root=ROOT) == [first.resolve()]
    with pytest.raises(FileNotFoundError, match="available"):
        notebooks.find_notebooks(["no_such_lesson"], root=ROOT)


def test_unreadable_notebook_names_the_file(tmp_path):
    bad = tmp_path / "00_bad.ipynb"
    bad.write_text("{ not json")
    with pytest.raises(ValueError, match="00_bad.ipynb"):
        notebooks.read(bad)
