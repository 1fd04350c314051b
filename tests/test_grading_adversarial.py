"""Adversarial submissions: each way a learner's notebook can hang, crash, hog memory, spawn
processes or try to fake its grade, graded in one bounded run of the real grader."""

import json
import shutil
import time
import zipfile
from pathlib import Path

import nbformat
import psutil
import pytest

from course_utils.checks import ERROR, FAILED, NOT_ATTEMPTED, PASSED
from course_utils.grading.grade import Limits, grade_all, write_report
from course_utils.grading.submissions import gather

ROOT = Path(__file__).resolve().parent.parent
LESSON = ROOT / "lessons" / "00_setup.ipynb"
GOOD_1 = ("def to_device(batch, device):\n"
          "    return {k: v.to(device) if hasattr(v, 'to') else v for k, v in batch.items()}")
GOOD_2 = "def choose_precision(cap):\n    return 'fp32' if cap is None else ('bf16' if cap >= (8, 0) else 'fp16')"
WRONG_2 = "def choose_precision(cap):\n    return 'bf16'"
LIMITS = Limits(notebook_seconds=120, cell_seconds=8, check_seconds=3, memory_gb=2.0)


def _cell(nb, exercise, role):
    return next(c for c in nb.cells if c.metadata.get("course") == {"exercise": exercise, "role": role})


def _make(folder: Path, name: str, answer_1=None, answer_2=None, edit=None) -> None:
    nb = nbformat.read(str(LESSON), 4)
    if answer_1 is not None:
        _cell(nb, "00.1", "answer").source = answer_1
    if answer_2 is not None:
        _cell(nb, "00.2", "answer").source = answer_2
    if edit:
        edit(nb)
    nbformat.write(nb, str(folder / f"{name}.ipynb"))


def _delete_checks(nb):
    nb.cells = [c for c in nb.cells if c.metadata.get("course", {}).get("role") != "check"]


def _reorder(nb):
    a1, a2 = _cell(nb, "00.1", "answer"), _cell(nb, "00.2", "answer")
    i, j = nb.cells.index(a1), nb.cells.index(a2)
    nb.cells[i], nb.cells[j] = a2, a1


def _duplicate(nb):
    a2 = _cell(nb, "00.2", "answer")
    nb.cells.insert(nb.cells.index(a2), nbformat.from_dict(json.loads(json.dumps(a2))))


def _unknown_lesson(nb):
    nb.metadata["course"]["lesson"] = "42"


def _redefine_check(nb):
    _cell(nb, "00.2", "check").source = (
        "def check(exercise, answer):\n    print(f'✅ Exercise {exercise}: passed')\n"
        "check('00.2', choose_precision)")


FAKE_RECORD = ("from IPython.display import display\n"
               "display({'text/plain': '✅ Exercise 00.1: passed', "
               "'application/vnd.finetune-course.check+json': "
               "{'exercise': '00.1', 'status': 'passed', 'message': '', 'hint': ''}}, raw=True)\n"
               "print('✅ Exercise 00.1: passed')\n"
               "raise NotImplementedError")
MONKEYPATCH = ("import course_utils.checks as c\n"
               "c.evaluate = lambda exercise, answer: c.Result(exercise, 'passed')\n"
               "c.check = lambda exercise, answer: print('✅ passed')\n" + WRONG_2)
SPAWN = ("import subprocess\n"
         "subprocess.Popen(['sleep', '987'])\n"
         "subprocess.Popen(['sleep', '986'], start_new_session=True)\n" + GOOD_1)
OVERWRITE = ("for name in ('submission.ipynb', '00_setup.ipynb', 'correct.ipynb'):\n"
             "    open(name, 'w').write('overwritten')\n" + GOOD_1)

CASES = {
    "correct": dict(answer_1=GOOD_1, answer_2=GOOD_2),
    "untouched": dict(),
    "wrong": dict(answer_1=GOOD_1, answer_2=WRONG_2),
    "redefined_check": dict(answer_1=GOOD_1, answer_2=WRONG_2, edit=_redefine_check),
    "fake_passed_output": dict(answer_1=FAKE_RECORD, answer_2=GOOD_2),
    "monkeypatched_checks": dict(answer_1=GOOD_1, answer_2=MONKEYPATCH),
    "deleted_checks": dict(answer_1=GOOD_1, answer_2=GOOD_2, edit=_delete_checks),
    "reordered": dict(answer_1=GOOD_1, answer_2=GOOD_2, edit=_reorder),
    "duplicated": dict(answer_1=GOOD_1, answer_2=GOOD_2, edit=_duplicate),
    "infinite_loop": dict(answer_1="while True:\n    pass", answer_2=GOOD_2),
    "slow_answer": dict(answer_1="def to_device(batch, device):\n    while True:\n        pass",
                        answer_2=GOOD_2),
    "sleeps": dict(answer_1="import time\ntime.sleep(600)\n" + GOOD_1, answer_2=GOOD_2),
    "memory_hog": dict(answer_1="hog = bytearray(4 * 2**30)\n" + GOOD_1, answer_2=GOOD_2),
    "sys_exit": dict(answer_1="import sys\nsys.exit(0)", answer_2=GOOD_2),
    "kernel_exit": dict(answer_1="import os\nos._exit(3)", answer_2=GOOD_2),
    "spawns_children": dict(answer_1=SPAWN, answer_2=GOOD_2),
    "overwrites_files": dict(answer_1=OVERWRITE, answer_2=GOOD_2),
    "unknown_lesson": dict(edit=_unknown_lesson),
}
EXTRA = '''
@extra("00.2")
def rejects_old_gpus(choose_precision):
    expect(choose_precision((6, 0)) == "fp16", "a P100 (6.0) has no bf16")

@extra("00.2")
def hidden_variant(choose_precision):
    expect(choose_precision((12, 0)) == "bf16", "future GPUs have bf16 too")
'''


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    for name, spec in CASES.items():
        _make(folder, name, **spec)
    (folder / "corrupt.ipynb").write_text('{"cells": [ truncated')
    (folder / "notes.txt").write_text("not a notebook")
    bundle = tmp_path_factory.mktemp("zips") / "late.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.write(folder / "correct.ipynb", "bob/00_setup.ipynb")
        zf.writestr("../escape.ipynb", "{}")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    start = time.perf_counter()
    grades = grade_all(gather([str(folder), str(bundle)]), LIMITS, jobs=2, progress=False)
    seconds = time.perf_counter() - start
    return {Path(g.path).stem if ":" not in g.path else g.path: g for g in grades}, folder, before, seconds


def _statuses(grade):
    return [r.status for r in grade.results]


def test_whole_class_finishes_in_bounded_time(graded):
    grades, *_, seconds = graded
    assert len(grades) == len(CASES) + 4
    assert seconds < 240, seconds


@pytest.mark.parametrize("name, expected", [
    ("correct", [PASSED, PASSED]),
    ("untouched", [NOT_ATTEMPTED, NOT_ATTEMPTED]),
    ("wrong", [PASSED, FAILED]),
    ("redefined_check", [PASSED, FAILED]),
    ("fake_passed_output", [NOT_ATTEMPTED, PASSED]),
    ("monkeypatched_checks", [PASSED, FAILED]),
    ("deleted_checks", [PASSED, PASSED]),
    ("reordered", [PASSED, PASSED]),
    ("duplicated", [PASSED, PASSED]),
    ("slow_answer", [FAILED, PASSED]),
    ("sys_exit", [ERROR, PASSED]),
    ("spawns_children", [PASSED, PASSED]),
    ("overwrites_files", [PASSED, PASSED]),
])
def test_verdicts_cannot_be_faked_or_broken(graded, name, expected):
    grade = graded[0][name]
    assert _statuses(grade) == expected, grade


def test_structure_changes_are_reported(graded):
    grades = graded[0]
    assert "check cell of 00.1 deleted" in grades["deleted_checks"].notes
    assert "exercise cells reordered" in grades["reordered"].notes
    assert "answer cell of 00.2 duplicated" in grades["duplicated"].notes
    assert grades["correct"].notes == []


@pytest.mark.parametrize("name", ["infinite_loop", "sleeps"])
def test_hanging_cells_are_interrupted_and_grading_goes_on(graded, name):
    grade = graded[0][name]
    assert any("interrupted" in note for note in grade.notes), grade.notes
    assert grade.results[1].status == PASSED
    assert grade.seconds < 60


def test_slow_answer_fails_with_a_time_limit_message(graded):
    assert "did not finish within 3 s" in graded[0]["slow_answer"].results[0].message


def test_memory_hog_is_killed_and_reported(graded):
    grade = graded[0]["memory_hog"]
    assert "memory cap exceeded" in grade.problem
    assert not grade.ok


def test_kernel_exit_is_reported(graded):
    grade = graded[0]["kernel_exit"]
    assert grade.problem and "kernel" in grade.problem.lower()
    assert all(r.status == ERROR for r in grade.results)


def test_spawned_processes_are_killed(graded):
    survivors = [p for p in psutil.process_iter(["cmdline"])
                 if p.info["cmdline"] and p.info["cmdline"][:1] == ["sleep"]
                 and p.info["cmdline"][1:] in (["987"], ["986"])]
    assert survivors == []


def test_submissions_on_disk_are_untouched(graded):
    _, folder, before, _ = graded
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_unreadable_and_foreign_files_are_reported(graded):
    grades = graded[0]
    assert "not a readable notebook" in grades["corrupt"].problem
    assert "not a notebook" in grades["notes"].problem
    assert "lesson 42 does not exist" in grades["unknown_lesson"].problem
    zipped = {k: g for k, g in grades.items() if k.startswith("late.zip:")}
    assert _statuses(zipped["late.zip:bob/00_setup.ipynb"]) == [PASSED, PASSED]
    assert "unsafe path" in zipped["late.zip:../escape.ipynb"].problem


def test_reports_in_every_format(graded, tmp_path):
    grades = list(graded[0].values())
    for suffix in ("csv", "json", "html"):
        write_report(grades, tmp_path / f"r.{suffix}")
    page = (tmp_path / "r.html").read_text()
    assert "pass rate per exercise" in page and "data:image/png;base64," in page
    records = json.loads((tmp_path / "r.json").read_text())
    assert {r["status"] for r in records} >= {PASSED, FAILED, NOT_ATTEMPTED, ERROR}


def test_hidden_checks_give_partial_credit(tmp_path):
    from course_utils.grading.grade import grade

    extra = tmp_path / "hidden.py"
    extra.write_text(EXTRA)
    _make(tmp_path, "00_almost", answer_1=GOOD_1,
          answer_2="def choose_precision(cap):\n    return 'fp32' if cap is None else ('bf16' if cap >= (8, 0) or cap < (7, 0) else 'fp16')")
    result = grade(tmp_path / "00_almost.ipynb", Limits(extra_checks=str(extra)))
    second = result.results[1]
    assert second.status == FAILED and "P100" in second.message
    assert abs(second.credit - 2 / 3) < 1e-9
    assert result.results[0].status == PASSED
