from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_utils import doctor
from course_utils.cli import main, parser

ROOT = Path(__file__).resolve().parent.parent


def test_documented_subcommands_exist():
    choices = parser()._subparsers._group_actions[0].choices
    assert {"doctor", "list", "build", "run", "check"} <= set(choices)


def test_list_shows_every_lesson(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for path in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"):
        assert path.name[:2] in out


def test_build_check_is_clean(capsys):
    assert main(["build", "--check"]) == 0
    assert "in sync" in capsys.readouterr().out


def test_run_reports_the_failing_cell(tmp_path, capsys):
    nb = new_notebook(cells=[new_markdown_cell("# x"), new_code_cell("print('fine')"),
                             new_code_cell("1 / 0")])
    path = tmp_path / "07_broken.ipynb"
    nbformat.write(nb, str(path))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert "ZeroDivisionError" in captured.err
    assert (tmp_path / "out" / "07_broken.ipynb").exists()


def test_run_reports_the_cause_of_a_multi_line_error_not_its_decoration(tmp_path, capsys):
    # a failed distributed launch ends its message in torchrun's ==== frame; the report must
    # show the exception and the rank's cause, as it did not when the sweep met one
    cell = ("raise RuntimeError(\"the 2-process launch of 'lesson' failed (exit 1):\\n\"\n"
            "                   \"[rank1]: ValueError: the batch is empty\\n\" + '=' * 40)")
    path = tmp_path / "15_broken.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(cell)]), str(path))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: the 2-process launch of 'lesson' failed (exit 1):" in err
    assert "ValueError: the batch is empty" in err


def test_run_unknown_lesson_is_a_clear_error(capsys):
    assert main(["run", "nonexistent"]) == 2
    assert "no lesson matches" in capsys.readouterr().err


def test_doctor_warns_about_missing_and_old_packages(monkeypatch):
    versions = {"transformers": "4.46.0", "peft": None}
    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda name: versions.get(name, real(name)) if name in versions else real(name))
    lines, warnings = doctor.report(check_network=False)
    floor = doctor._floors()["transformers"]  # pyproject's lower bound, read from the metadata
    assert any(f"transformers 4.46.0 is older than {floor}" in w for w in warnings)
    assert any(w.startswith("peft is not installed") for w in warnings)
    assert any(line.startswith("bitsandbytes") and "usable" in line for line in lines)


def test_doctor_is_clean_here(capsys):
    assert main(["doctor", "--offline"]) == 0
    assert "profile" in capsys.readouterr().out


def test_run_stops_a_notebook_at_its_time_budget(tmp_path, capsys):
    import time

    nb = new_notebook(cells=[new_code_cell("import time"), new_code_cell("time.sleep(2)"),
                             new_code_cell("time.sleep(60)")])
    path = tmp_path / "08_slow.ipynb"
    nbformat.write(nb, str(path))
    start = time.perf_counter()
    assert main(["run", str(path), "--timeout", "6", "--out", str(tmp_path)]) == 1
    assert time.perf_counter() - start < 40
    assert "Timeout" in capsys.readouterr().err
