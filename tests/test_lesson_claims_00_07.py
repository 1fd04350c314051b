"""Lessons 00-07 state their measured relations as claims and train with the learner's code.

Static checks on the solution sources (the notebooks themselves execute in
tests/test_grading_lessons.py, where a false claim raises `ClaimFailed`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from course_utils.claims import ClaimFailed, claim
from course_utils.notebooks.build import read

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(p for p in (ROOT / "solutions").glob("0[0-7]_*.ipynb"))


def _code(path: Path) -> list[str]:
    return [c.source for c in read(path).cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_at_least_two_claims(path):
    count = sum(len(re.findall(r"\bclaim\(", src)) for src in _code(path))
    assert count >= 2, f"{path.name} has {count} claim(...) calls"


@pytest.mark.parametrize("path", [p for p in LESSONS if not p.name.startswith("00")], ids=lambda p: p.stem)
def test_learner_code_drives_the_lesson(path):
    """Some cell after an exercise picks the learner's answer (or the reference) to train with."""
    uses = [src for src in _code(path) if "learner_or_reference(" in src]
    assert uses, f"{path.name} never hands a learner's answer to the training code"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_answer_cells_hold_only_the_learners_code(path):
    """Nothing a later cell needs is defined next to an answer, so a broken answer breaks nothing else."""
    for src in _code(path):
        if "### BEGIN SOLUTION" not in src:
            continue
        outside = src.split("### BEGIN SOLUTION")[0] + src.split("### END SOLUTION")[1]
        for line in outside.splitlines():
            assert not re.match(r"^[A-Za-z_][A-Za-z_0-9]* *=", line), f"{path.name}: set-up `{line}` in an answer cell"


def test_a_false_claim_stops_the_run(monkeypatch):
    monkeypatch.delenv("COURSE_REHEARSAL", raising=False)
    assert claim("two is more than one", 2 > 1, two=2)
    with pytest.raises(ClaimFailed, match=r"claim does not hold: one is more than two \(one=1\)"):
        claim("one is more than two", 1 > 2, one=1)


def test_a_sweep_records_every_claim_and_keeps_going(monkeypatch, tmp_path, capsys):
    import json

    import numpy as np

    log = tmp_path / "claims.jsonl"
    monkeypatch.delenv("COURSE_REHEARSAL", raising=False)
    monkeypatch.setenv("COURSE_CLAIMS_LOG", str(log))
    assert claim("holds", True, gap=np.float32(0.25), n=3, names=("a", "b"))
    with pytest.raises(ClaimFailed):  # logging alone changes nothing about failing
        claim("fails", False, gap=float("nan"))
    monkeypatch.setenv("COURSE_CLAIMS", "record")
    assert not claim("fails again", False, gap=-0.5)
    assert "claim does not hold (recorded for the sweep): fails again" in capsys.readouterr().out
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["text"], r["holds"]) for r in rows] == [("holds", True), ("fails", False), ("fails again", False)]
    assert rows[0]["numbers"] == {"gap": 0.25, "n": 3.0, "names": "('a', 'b')"}
    assert rows[1]["numbers"] == {"gap": "nan"} and rows[2]["numbers"] == {"gap": -0.5}
