"""Verdicts from probe records, the data boundary, submission matching, reports, `course check`."""

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course_utils import checks
from course_utils.checks import ERROR, FAILED, NOT_ATTEMPTED, PASSED, Result, judge_record, parse_record, probe
from course_utils.cli import main, parser
from course_utils.grading import wire
from course_utils.grading.grade import Grade, load_extras, safe, table, write_report
from course_utils.grading.submissions import LessonKey, gather, lesson_key, lesson_of, structure_notes
from course_utils.notebooks.build import exercise_cells, read

ROOT = Path(__file__).resolve().parent.parent
GOOD_2 = lambda cap: "fp32" if cap is None else ("bf16" if cap >= (8, 0) else "fp16")  # noqa: E731


def _answer(exercise):
    return new_code_cell("def f():\n    pass", metadata={"course": {"exercise": exercise, "role": "answer"}})


def _check(exercise):
    return new_code_cell(f'check("{exercise}");', metadata={"course": {"exercise": exercise, "role": "check"}})


# the data boundary ---------------------------------------------------------------------------

def test_wire_round_trips_plain_data_and_arrays():
    value = {"a": (1, 2.5, None), 3: [True, "x"], "s": {1, 2}, "arr": np.arange(6, dtype="int64").reshape(2, 3),
             "nan": float("nan")}
    back = wire.loads(wire.dumps(value))
    assert back["a"] == (1, 2.5, None) and back[3] == [True, "x"] and back["s"] == {1, 2}
    assert isinstance(back["arr"], np.ndarray) and back["arr"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert back["nan"] != back["nan"]


@pytest.mark.parametrize("value", [object(), lambda: 1, (x for x in []), [Exception()], np.array([object()])])
def test_objects_that_are_not_data_cannot_cross(value):
    with pytest.raises(wire.Uncheckable):
        wire.encode(value)


@pytest.mark.parametrize("text", ['{"__pickle__": "x"}', '{"a": 1}', '{"__array__": ["object", [1], [1]]}',
                                  '{"__array__": ["int64", [2], [1]]}', '[' * 100000, "NaN", '"x"' * 10**7])
def test_forged_data_is_rejected(text):
    with pytest.raises(ValueError):
        wire.loads(text)


def test_an_uncheckable_return_value_fails_never_passes():
    result = checks.evaluate("00.2", lambda cap: object())
    assert result.status == FAILED and checks.UNCHECKABLE in result.message


def test_probe_records_are_data_and_judged_here():
    line = probe("00.2", GOOD_2)
    record = parse_record(line)
    assert record["outcome"] == "data" and "status" not in record
    assert judge_record("00.2", record).status == PASSED


@pytest.mark.parametrize("record", [
    None, [], "passed", 7, {"exercise": "00.2"}, {"exercise": "00.1", "outcome": "data", "data": []},
    {"exercise": "00.2", "status": "passed", "credit": 1000},
    {"exercise": "00.2", "outcome": "data", "data": {"__dict__": []}},
    {"exercise": "00.2", "outcome": "data", "data": ["fp32"] * 6},
    {"exercise": "00.2", "outcome": "passed"}, {"exercise": "00.2", "outcome": ""},
    {"exercise": "00.2", "outcome": "data", "data": {"__pickle__": "gASVAA=="}},
])
def test_forged_or_malformed_records_never_pass(record):
    result = judge_record("00.2", record)
    assert result.status != PASSED and result.credit == 0.0


def test_a_base_exception_in_an_answer_is_a_failure_of_that_answer_only():
    def leaves(cap):
        raise SystemExit(0)

    def interrupts(cap):
        raise KeyboardInterrupt

    for answer, name in ((leaves, "SystemExit"), (interrupts, "KeyboardInterrupt")):
        result = checks.evaluate("00.2", answer)
        assert result.status == FAILED and name in result.message


def test_answer_names_are_declared_once_on_the_checker():
    """Every solution's check cell calls check("NN.k") and defines the registered name."""
    for solution in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")):
        nb = read(solution)
        found = exercise_cells(nb)
        key = lesson_key(solution.name[:2])
        assert sorted(found) == [e for e, _ in key.exercises], solution.name
        for exercise, answer in key.exercises:
            source = nb.cells[found[exercise]["answer"]].source
            assert f"def {answer}(" in source or f"{answer} =" in source, (solution.name, answer)
            assert f'check("{exercise}")' in nb.cells[found[exercise]["check"]].source


# hidden tests --------------------------------------------------------------------------------

def test_hidden_tests_are_judged_on_the_returned_values(tmp_path):
    hidden = tmp_path / "hidden.py"
    hidden.write_text('@extra("00.2", calls=[((6, 0),), ((12, 0),)])\n'
                      'def old_and_new(outputs):\n'
                      '    expect(outputs == ["fp16", "bf16"], "a P100 (6.0) has no bf16")\n')
    extras = load_extras(str(hidden))
    calls = [c for c, _ in extras["00.2"]]
    judges = [j for _, j in extras["00.2"]]
    almost = lambda cap: "fp32" if cap is None else ("bf16" if cap >= (8, 0) or cap < (7, 0) else "fp16")  # noqa
    result = judge_record("00.2", parse_record(probe("00.2", almost, extras=calls)), judges)
    assert result.status == FAILED and "P100" in result.message and result.credit == 0.5
    full = judge_record("00.2", parse_record(probe("00.2", GOOD_2, extras=calls)), judges)
    assert full.status == PASSED and full.credit == 1.0


# submissions ---------------------------------------------------------------------------------

def test_structure_notes():
    nb = new_notebook(cells=[_answer("05.2"), _check("05.2"), _answer("05.1"), _answer("05.1")])
    notes = structure_notes(nb, LessonKey("05", [("05.1", "f"), ("05.2", "g")]))
    assert notes == ["answer cell of 05.1 duplicated", "check cell of 05.1 deleted", "exercise cells reordered"]


def test_lesson_from_metadata_then_file_name():
    tagged = new_notebook(metadata={"course": {"lesson": "07"}})
    assert lesson_of(Path("alice.ipynb"), tagged) == "07"
    assert lesson_of(Path("alice-03_gradual_unfreezing.ipynb"), new_notebook()) == "03"
    assert lesson_of(Path("homework.ipynb"), new_notebook()) is None


@pytest.mark.parametrize("lesson", ["../../x/keyzip.zip/k/00", "0", "000", 7, ["00"], "00\n"])
def test_lesson_ids_must_be_two_digits(lesson):
    with pytest.raises(ValueError, match="two digits"):
        lesson_of(Path("00_setup.ipynb"), new_notebook(metadata={"course": {"lesson": lesson}}))


def test_lesson_key_comes_from_the_checker_registry():
    assert lesson_key("00").exercises == [("00.1", "to_device"), ("00.2", "choose_precision")]
    with pytest.raises(FileNotFoundError):
        lesson_key("42")


def test_zip_entries_are_capped_and_extracted_copies_removed(tmp_path, monkeypatch):
    from course_utils.grading import submissions

    monkeypatch.setattr(submissions, "ZIP_ENTRY_BYTES", 1000)
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/00_setup.ipynb", "{}")
        zf.writestr("b/00_setup.ipynb", " " * 5000)
        zf.writestr("notes.txt", "x")
    with gather([str(archive)]) as found:
        problems = {s.name: s.problem for s in found}
        scratch = found.scratch
        assert problems["class.zip:a/00_setup.ipynb"] is None
        assert "larger than" in problems["class.zip:b/00_setup.ipynb"]
        assert "not a notebook" in problems["class.zip:notes.txt"]
        assert scratch.exists()
    assert not scratch.exists()


# reports -------------------------------------------------------------------------------------

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


def test_credit_is_clamped_and_terminal_text_escaped():
    grades = [Grade("evil\nbob_00.ipynb\x1b[2J", "00",
                    [Result("00.1", PASSED, credit=1000), Result("00.2", FAILED, "x\n00.2:passed\x1b[1A", credit="1")])]
    text = table(grades)
    assert "1/2" in text and "1000" not in text
    assert "\x1b" not in text and len(text.splitlines()) == 2
    assert safe("a\nb\x1b[2J\u202e") == "a\\nb\\x1b[2J\\u202e"


# the command ---------------------------------------------------------------------------------

def test_check_help_states_the_exit_status():
    help_text = parser()._subparsers._group_actions[0].choices["check"].format_help()
    assert "Exit status" in help_text and "not attempted" in help_text and "--sandbox" in help_text


def test_check_command_reports_unreadable_and_unknown_files(tmp_path, capsys):
    (tmp_path / "broken.ipynb").write_text("{ nope")
    nbformat.write(new_notebook(), str(tmp_path / "mystery.ipynb"))
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "broken.ipynb" in out and "not a readable notebook" in out
    assert "cannot tell which lesson" in out


def test_check_command_grades_an_edited_lesson_and_fails_below_full_credit(tmp_path, capsys):
    nb = nbformat.read(str(ROOT / "lessons" / "00_setup.ipynb"), 4)
    for cell in nb.cells:
        if cell.metadata.get("course") == {"exercise": "00.2", "role": "answer"}:
            cell.source = "def choose_precision(capability):\n    return 'bf16'"
    nbformat.write(nb, str(tmp_path / "learner.ipynb"))
    assert main(["check", str(tmp_path / "learner.ipynb"), "--report", str(tmp_path / "v.json")]) == 1
    rows = {r["exercise"]: r["status"] for r in json.loads((tmp_path / "v.json").read_text())}
    assert rows == {"00.1": NOT_ATTEMPTED, "00.2": FAILED}
    captured = capsys.readouterr()
    assert "T4" in captured.out and "sandbox:" in captured.err
    # the doctor's cell (role machine-report) is not run, and the grader says so
    assert "not run: 1 machine-report cell(s) in 1 submission(s)" in captured.err


def test_sandbox_none_warns(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nothing.ipynb"), "--sandbox", "none"]) == 1
    assert "WITHOUT a sandbox" in capsys.readouterr().err


def test_missing_extra_checks_file_is_a_clear_error(capsys):
    assert main(["check", str(ROOT / "lessons" / "00_setup.ipynb"), "--extra-checks", "nope.py"]) == 2
    assert "nope.py" in capsys.readouterr().err


# the sandbox ---------------------------------------------------------------------------------

def test_without_any_sandbox_tool_auto_grades_unconfined_with_a_warning(monkeypatch):
    from course_utils.grading import sandbox

    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    box = sandbox.choose("auto")
    assert box.kind == "none" and "bwrap is not installed" in box.reason and "WITHOUT a sandbox" in box.warning
    with pytest.raises(ValueError, match="bwrap is not installed"):
        sandbox.choose("bwrap")
    with pytest.raises(ValueError, match="docker"):
        sandbox.choose("docker")


def test_the_bwrap_command_shows_only_the_package_the_environment_and_the_submission(tmp_path):
    from course_utils.grading import sandbox

    argv = sandbox.command(sandbox.Sandbox("bwrap", "test"), ["python", "-m", "ipykernel_launcher"],
                           tmp_path, {"COURSE_PROFILE": "tiny"}, 2.0, 64)
    assert "--unshare-net" in argv or "--unshare-all" in argv
    assert "--clearenv" in argv and "--die-with-parent" in argv
    sources = [argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind")]
    writable = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    assert writable == [str(tmp_path)]
    for source in sources:  # nothing that contains solutions/ or is $HOME
        assert not (ROOT / "solutions").is_relative_to(source) and source != str(Path.home()), source
    assert argv[argv.index("--processes") + 1] == "64"


def test_parallel_kernels_share_the_cores_unless_a_thread_count_was_chosen(monkeypatch, tmp_path):
    from course_utils.grading.grade import Limits, share_cores
    from course_utils.grading.kernel import THREAD_VARIABLES, _environment

    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert share_cores(Limits(), 1).environment == {}
    assert share_cores(Limits(), 2).environment == {"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"}
    assert share_cores(Limits(), 16).environment["OMP_NUM_THREADS"] == "1"
    chosen = Limits(environment={"OMP_NUM_THREADS": "3"})
    assert share_cores(chosen, 2) == chosen
    assert "OMP_NUM_THREADS" not in _environment(tmp_path, "tiny")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the instructor's own choice reaches the kernel
    assert share_cores(Limits(), 2) == Limits() and _environment(tmp_path, "tiny")["OMP_NUM_THREADS"] == "2"


def test_only_code_cells_with_the_machine_report_role_are_skipped_in_grading():
    from nbformat.v4 import new_code_cell, new_markdown_cell

    from course_utils.grading.kernel import machine_report

    report = {"course": {"role": "machine-report"}}
    assert machine_report(new_code_cell("report()", metadata=report))
    assert not machine_report(new_markdown_cell("report", metadata=report))
    assert not machine_report(new_code_cell("report()", metadata={"course": {"role": "answer"}}))
    assert not machine_report(new_code_cell("report()", metadata={"course": "machine-report"}))
    lesson = nbformat.read(str(ROOT / "lessons" / "00_setup.ipynb"), 4)
    assert [i for i, c in enumerate(lesson.cells) if machine_report(c)] == [4]
    assert "report(" in lesson.cells[4].source
