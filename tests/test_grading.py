"""Verdicts from the grader's records, submission matching, reports, and `course check`."""

import csv
import json
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from course_utils.checks import ERROR, FAILED, NOT_ATTEMPTED, PASSED, Result
from course_utils.cli import main
from course_utils.grading.grade import Grade, _from_records, table, write_report
from course_utils.grading.submissions import LessonKey, lesson_key, lesson_of, structure_notes

ROOT = Path(__file__).resolve().parent.parent
KEY = LessonKey("05", [("05.1", "f"), ("05.2", "g"), ("05.3", "h"), ("05.4", "k"), ("05.5", "m")])


def _answer(exercise, error=None):
    cell = new_code_cell("def f():\n    pass", metadata={"course": {"exercise": exercise, "role": "answer"}})
    if error:
        cell.outputs = [new_output("error", ename=error, evalue="", traceback=[])]
    return cell


def _check(exercise):
    return new_code_cell(f'check("{exercise}", f);', metadata={"course": {"exercise": exercise, "role": "check"}})


def test_records_become_verdicts():
    executed = new_notebook(cells=[_answer("05.1"), _answer("05.2"), _answer("05.3", "NotImplementedError"),
                                   _answer("05.4", "SyntaxError")])
    lines = [json.dumps({"exercise": "05.1", "status": PASSED, "message": "", "hint": "", "credit": 1.0}),
             json.dumps({"exercise": "05.2", "status": FAILED, "message": "bad", "hint": "h", "credit": 0.5}),
             json.dumps({"exercise": "05.3", "status": "missing", "message": "NameError: h"}),
             json.dumps({"exercise": "05.4", "status": "missing", "message": "NameError: k"}),
             "garbage that a crashed kernel left half-written"]
    got = {r.exercise: r for r in _from_records(lines, KEY, executed, "DeadKernelError: died")}
    assert got["05.1"].status == PASSED and got["05.2"].credit == 0.5
    assert got["05.3"].status == NOT_ATTEMPTED
    assert got["05.4"].status == ERROR and "SyntaxError" in got["05.4"].message
    assert got["05.5"].status == ERROR and "died" in got["05.5"].message


def test_structure_notes():
    nb = new_notebook(cells=[_answer("05.2"), _check("05.2"), _answer("05.1"), _answer("05.1")])
    notes = structure_notes(nb, LessonKey("05", [("05.1", "f"), ("05.2", "g")]))
    assert notes == ["answer cell of 05.1 duplicated", "check cell of 05.1 deleted", "exercise cells reordered"]


def test_lesson_from_metadata_then_file_name():
    tagged = new_notebook(metadata={"course": {"lesson": "07"}})
    assert lesson_of(Path("alice.ipynb"), tagged) == "07"
    assert lesson_of(Path("alice-03_gradual_unfreezing.ipynb"), new_notebook()) == "03"
    assert lesson_of(Path("homework.ipynb"), new_notebook()) is None


def test_lesson_key_reads_the_answer_expressions():
    assert lesson_key("00", ROOT).exercises == [("00.1", "to_device"), ("00.2", "choose_precision")]


def test_reports_and_table(tmp_path):
    grades = [Grade("a/00_setup.ipynb", "00", [Result("00.1", PASSED), Result("00.2", FAILED, "bad", credit=0.5)]),
              Grade("b/x.ipynb", None, problem="cannot tell which lesson this notebook is")]
    text = table(grades)
    assert "1.5/2" in text and "00.2:failed(0.50)" in text and "not graded" in text
    write_report(grades, tmp_path / "r.csv")
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [r["status"] for r in rows] == [PASSED, FAILED, ERROR]
    write_report(grades, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())[1]["message"] == "bad"


def test_check_command_reports_unreadable_and_unknown_files(tmp_path, capsys):
    (tmp_path / "broken.ipynb").write_text("{ nope")
    nbformat.write(new_notebook(), str(tmp_path / "mystery.ipynb"))
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "broken.ipynb" in out and "not a readable notebook" in out
    assert "cannot tell which lesson" in out


def test_check_command_grades_an_edited_lesson(tmp_path, capsys):
    nb = nbformat.read(str(ROOT / "lessons" / "00_setup.ipynb"), 4)
    for cell in nb.cells:
        if cell.metadata.get("course") == {"exercise": "00.2", "role": "answer"}:
            cell.source = "def choose_precision(capability):\n    return 'bf16'"
    nbformat.write(nb, str(tmp_path / "learner.ipynb"))
    assert main(["check", str(tmp_path / "learner.ipynb"), "--report", str(tmp_path / "v.json")]) == 1
    rows = {r["exercise"]: r["status"] for r in json.loads((tmp_path / "v.json").read_text())}
    assert rows == {"00.1": NOT_ATTEMPTED, "00.2": FAILED}
    assert "T4" in capsys.readouterr().out


def test_missing_extra_checks_file_is_a_clear_error(capsys):
    assert main(["check", str(ROOT / "lessons" / "00_setup.ipynb"), "--extra-checks", "nope.py"]) == 2
    assert "nope.py" in capsys.readouterr().err
