"""Verdicts read from executed notebooks, reports, and the `course check` exit status."""

import csv
import json
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from course_utils.checks import ERROR, FAILED, MIME, NOT_ATTEMPTED, PASSED, Result
from course_utils.cli import main
from course_utils.grading import Grade, table, verdicts, write_report

ROOT = Path(__file__).resolve().parent.parent


def _answer(exercise, error=None):
    cell = new_code_cell("def f():\n    pass", metadata={"course": {"exercise": exercise, "role": "answer"}})
    if error:
        cell.outputs = [new_output("error", ename=error, evalue="", traceback=[])]
    return cell


def _check(exercise, status=None, error=None):
    cell = new_code_cell(f'check("{exercise}", f);', metadata={"course": {"exercise": exercise, "role": "check"}})
    if status:
        record = {"exercise": exercise, "status": status, "message": "m", "hint": ""}
        cell.outputs = [new_output("display_data", data={MIME: record, "text/plain": "x"})]
    if error:
        cell.outputs = [new_output("error", ename=error, evalue="name 'f' is not defined", traceback=[])]
    return cell


def test_verdicts_cover_every_outcome():
    nb = new_notebook(cells=[
        _answer("05.1"), _check("05.1", PASSED),
        _answer("05.2"), _check("05.2", FAILED),
        _answer("05.3", "NotImplementedError"), _check("05.3", error="NameError"),
        _answer("05.4", "SyntaxError"), _check("05.4", error="NameError"),
        _answer("05.5"),                                   # check cell deleted
        _answer("05.6"), _check("05.6"),                   # check ran but printed no verdict
    ])
    got = {r.exercise: r.status for r in verdicts(nb, [f"05.{i}" for i in range(1, 8)])}
    assert got == {"05.1": PASSED, "05.2": FAILED, "05.3": NOT_ATTEMPTED, "05.4": ERROR,
                   "05.5": ERROR, "05.6": ERROR, "05.7": ERROR}


def test_stub_that_the_check_called_is_not_attempted():
    nb = new_notebook(cells=[_answer("05.1"), _check("05.1", NOT_ATTEMPTED)])
    assert verdicts(nb, ["05.1"])[0].status == NOT_ATTEMPTED


def test_reports_and_table(tmp_path):
    grades = [Grade("a/00_setup.ipynb", "00", [Result("00.1", PASSED), Result("00.2", FAILED, "bad")]),
              Grade("b/x.ipynb", None, problem="cannot tell which lesson this notebook is")]
    text = table(grades)
    assert "1/2" in text and "not graded" in text
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
        if cell.metadata.get("course", {}).get("exercise") == "00.2" and \
                cell.metadata["course"]["role"] == "answer":
            cell.source = "def choose_precision(capability):\n    return 'bf16'"
    nbformat.write(nb, str(tmp_path / "learner.ipynb"))
    assert main(["check", str(tmp_path / "learner.ipynb"), "--report", str(tmp_path / "v.json")]) == 1
    rows = {r["exercise"]: r["status"] for r in json.loads((tmp_path / "v.json").read_text())}
    assert rows == {"00.1": NOT_ATTEMPTED, "00.2": FAILED}
    assert "T4" in capsys.readouterr().out
