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


def _run_cell(monkeypatch, in_colab: bool) -> list[list[str]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
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


def test_outside_colab_installs_nothing(monkeypatch):
    assert _run_cell(monkeypatch, in_colab=False) == []


@pytest.mark.parametrize("path", sorted((ROOT / "solutions").glob("*.ipynb")) +
                         sorted((ROOT / "lessons").glob("*.ipynb")), ids=lambda p: p.name)
def test_every_notebook_carries_the_rendered_setup_cell(path):
    assert notebooks.read(path).cells[1].source == setup_cell_source()
