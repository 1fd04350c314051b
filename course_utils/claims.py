"""Measured claims in lessons: a sentence in the text is only as good as the number behind it.

A solution notebook states each measured relation with `claim(text, condition, **numbers)`. The
claim prints with its numbers; when it does not hold, the cell raises `ClaimFailed`, so the test
suite (which executes every solution) fails the moment a lesson's prose stops matching its run.

In the full-profile rehearsal (`COURSE_REHEARSAL=1`) models have random weights, so quality claims
cannot hold there: they are printed as "not checked" instead of failing; the rehearsal checks that
the notebook runs, not what it learns.
"""

from __future__ import annotations

from typing import Any

from course_utils.profile import rehearsal


class ClaimFailed(AssertionError):
    """A lesson's measured claim did not hold on this run."""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def claim(text: str, condition: bool, **numbers: Any) -> bool:
    """Print a lesson's claim with the numbers behind it, and fail the cell when it is false."""
    shown = ", ".join(f"{k}={_fmt(v)}" for k, v in numbers.items())
    detail = f" ({shown})" if shown else ""
    holds = bool(condition)
    if holds:
        print(f"✔ claim holds: {text}{detail}")
    elif rehearsal():
        print(f"· claim not checked in the rehearsal (random weights): {text}{detail}")
    else:
        raise ClaimFailed(f"claim does not hold: {text}{detail}")
    return holds
