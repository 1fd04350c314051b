"""Measured claims in lessons: a sentence in the text is only as good as the number behind it.

A solution notebook states each measured relation with `claim(text, condition, **numbers)`. The
claim prints with its numbers; when it does not hold, the cell raises `ClaimFailed`, so the test
suite (which executes every solution) fails the moment a lesson's prose stops matching its run.

In the full-profile rehearsal (`COURSE_REHEARSAL=1`) models have random weights, so quality claims
cannot hold there: they are printed as "not checked" instead of failing; the rehearsal checks that
the notebook runs, not what it learns.

A claim must hold on every learner's machine, not only on ours, so its threshold comes from a
sweep over seeds and numeric paths (`benchmarks/claims_sweep.py`). For that sweep two variables
turn a run into a measurement: `COURSE_CLAIMS_LOG` names a JSON-lines file that every claim is
appended to (text, whether it held, its numbers), and `COURSE_CLAIMS=record` reports a failing
claim instead of raising, so one run measures every claim of a lesson.
"""

from __future__ import annotations

import json
import math
import numbers as _numbers
import os
from typing import Any

from course_utils.profile import rehearsal


class ClaimFailed(AssertionError):
    """A lesson's measured claim did not hold on this run."""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _plain(value: Any) -> Any:
    """A claim's number as JSON can hold it: numbers as floats, anything else as its text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, _numbers.Real) or hasattr(value, "__float__") and not isinstance(value, str):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return str(value)
        return number if math.isfinite(number) else str(number)
    return str(value)


def _record(text: str, holds: bool, numbers: dict[str, Any]) -> None:
    path = os.environ.get("COURSE_CLAIMS_LOG")
    if not path:
        return
    row = {"text": text, "holds": holds, "numbers": {k: _plain(v) for k, v in numbers.items()}}
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(row) + "\n")


def claim(text: str, condition: bool, **numbers: Any) -> bool:
    """Print a lesson's claim with the numbers behind it, and fail the cell when it is false."""
    shown = ", ".join(f"{k}={_fmt(v)}" for k, v in numbers.items())
    detail = f" ({shown})" if shown else ""
    holds = bool(condition)
    _record(text, holds, numbers)
    if holds:
        print(f"✔ claim holds: {text}{detail}")
    elif rehearsal():
        print(f"· claim not checked in the rehearsal (random weights): {text}{detail}")
    elif os.environ.get("COURSE_CLAIMS", "").strip().lower() == "record":
        print(f"✘ claim does not hold (recorded for the sweep): {text}{detail}")
    else:
        raise ClaimFailed(f"claim does not hold: {text}{detail}")
    return holds
