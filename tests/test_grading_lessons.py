"""Every lesson grades as expected: untouched learner copy -> all not attempted, solution -> all
passed. This runs each notebook through the real grader in a fresh kernel."""

from pathlib import Path

import pytest

from course_utils.checks import NOT_ATTEMPTED, PASSED
from course_utils.grading.grade import grade
from course_utils.grading.submissions import lesson_key

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_every_lesson_has_at_least_two_exercises(solution):
    assert len(lesson_key(solution.name[:2]).exercises) >= 2


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_untouched_lesson_is_not_attempted(solution):
    graded = grade(ROOT / "lessons" / solution.name)
    assert graded.problem is None and graded.notes == []
    assert graded.results, "no exercises found"
    assert {r.status for r in graded.results} == {NOT_ATTEMPTED}, graded.results


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_passes(solution):
    graded = grade(solution)
    assert graded.problem is None, graded.problem
    assert [r.status for r in graded.results] == [PASSED] * len(graded.results), graded.results
