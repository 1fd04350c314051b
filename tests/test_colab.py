"""The Colab set-up cell: installs this package at the course's version inside Colab only."""

import subprocess
import sys
import types
from pathlib import Path

import pytest

import course_utils
from course_utils.notebooks import build as notebooks
from course_utils.notebooks.colab import setup_cell_source

ROOT = Path(__file__).resolve().parent.parent


def _run_cell(monkeypatch, in_colab: bool, returncode: int = 0, stderr: str = "") -> list[list[str]]:
    calls: list[list[str]] = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, returncode, "", stderr)

    monkeypatch.setattr(subprocess, "run", fake_run)
    if in_colab:
        colab = types.ModuleType("google.colab")
        monkeypatch.setitem(sys.modules, "google.colab", colab)
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(setup_cell_source(), "<setup cell>", "exec"), {})
    return calls


def test_in_colab_installs_this_package_at_this_version_and_not_torch(monkeypatch):
    calls = _run_cell(monkeypatch, in_colab=True)
    assert len(calls) == 1
    cmd = calls[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"]
    requirement = cmd[-1]
    assert requirement.startswith("finetune-course @ git+https://")
    assert requirement.endswith(f"@v{course_utils.__version__}")
    assert not any("torch" in part for part in cmd), cmd


def test_unreachable_package_source_fails_with_a_clear_message(monkeypatch):
    pip_error = ("ERROR: Error [Errno -3] Temporary failure in name resolution while executing "
                 "command git clone\nERROR: Could not find a version that satisfies the requirement")
    with pytest.raises(RuntimeError) as raised:
        _run_cell(monkeypatch, in_colab=True, returncode=1, stderr=pip_error)
    message = str(raised.value)
    assert "Could not install the course package" in message and "internet" in message
    assert "name resolution" in message  # pip's last lines, for the curious, not a traceback
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_setup_cell_says_whether_a_restart_is_needed():
    from course_utils.notebooks import colab

    source = setup_cell_source()
    assert ("no restart is needed" in source) == (not colab.UPGRADES_ON_COLAB)


def test_repository_url_is_written_only_in_pyproject():
    url = "github.com/finetune-course/finetune-course"
    sources = [p for p in (ROOT / "course_utils").rglob("*.py") if url in p.read_text()]
    assert sources == [], sources


def test_outside_colab_installs_nothing(monkeypatch):
    assert _run_cell(monkeypatch, in_colab=False) == []


@pytest.mark.parametrize("path", sorted((ROOT / "solutions").glob("*.ipynb")) +
                         sorted((ROOT / "lessons").glob("*.ipynb")), ids=lambda p: p.name)
def test_every_notebook_carries_the_rendered_setup_cell(path):
    assert notebooks.read(path).cells[1].source == setup_cell_source()
