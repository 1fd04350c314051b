"""Every solution executes top to bottom and grades all passed, through the real grader in a fresh
kernel, in the `tiny` profile: this is the suite's one execution of each solution notebook (it
replaces a separate nbval pass), so it also fails on any cell that raises, a broken claim included.

Untouched learner copies are graded (all "not attempted") in the full-profile rehearsal,
`tests/test_rehearsal.py`: each notebook runs twice in the suite, not three times.
"""

from pathlib import Path

import pytest

from course_utils.checks import PASSED
from course_utils.grading.grade import Limits, grade
from course_utils.grading.submissions import lesson_key

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_every_lesson_has_at_least_two_exercises(solution):
    assert len(lesson_key(solution.name[:2]).exercises) >= 2


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_runs_and_passes(solution):
    graded = grade(solution, Limits(machine_reports=True))  # every cell, lesson 00's doctor included
    assert graded.problem is None, graded.problem
    assert graded.reports_skipped == []
    assert graded.errors == [], graded.errors  # every cell ran, every claim held
    assert [r.status for r in graded.results] == [PASSED] * len(graded.results), graded.results
