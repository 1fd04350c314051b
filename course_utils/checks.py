"""Exercise checks: one verdict per exercise, readable by a learner and parseable by the grader.

A lesson's checkers live in `course_utils.exercises.exNN` and are registered with `@checker`.
Check cells call `check("NN.k", answer)`; the grader calls `evaluate` on the same registry.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from typing import Any, Callable

PASSED, FAILED, NOT_ATTEMPTED, ERROR = "passed", "failed", "not attempted", "error"
MIME = "application/vnd.finetune-course.check+json"


class CheckFailed(Exception):
    """Raised by a checker with a message a learner can act on (never the answer itself)."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass
class Result:
    """The outcome of one exercise check."""

    exercise: str
    status: str
    message: str = ""
    hint: str = ""
    credit: float | None = None  # share of sub-checks passed, set by the grader

    def __post_init__(self) -> None:
        if self.credit is None:
            self.credit = 1.0 if self.status == PASSED else 0.0

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def line(self) -> str:
        """The verdict as the learner sees it under a check cell."""
        icon = {PASSED: "✅", FAILED: "❌", NOT_ATTEMPTED: "⏳", ERROR: "⚠️"}[self.status]
        text = f"{icon} Exercise {self.exercise}: {self.status}"
        if self.message:
            text += f" — {self.message}"
        if self.hint:
            text += f"\n   hint: {self.hint}"
        return text


@dataclass(frozen=True)
class Checker:
    exercise: str
    title: str
    func: Callable[[Any], str | None]


_REGISTRY: dict[str, Checker] = {}


def checker(exercise: str, title: str) -> Callable[[Callable[[Any], str | None]], Callable[[Any], str | None]]:
    """Register a function as the check for one exercise id ("NN.k")."""

    def register(func: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
        _REGISTRY[exercise] = Checker(exercise, title, func)
        return func

    return register


def lookup(exercise: str) -> Checker:
    """Find the checker for an exercise id, importing its lesson's module on first use."""
    if exercise not in _REGISTRY:
        lesson = exercise.split(".")[0]
        try:
            importlib.import_module(f"{__package__}.exercises.ex{lesson}")
        except ModuleNotFoundError as exc:
            raise KeyError(f"no checks exist for lesson {lesson!r}") from exc
    if exercise not in _REGISTRY:
        raise KeyError(f"no check is registered for exercise {exercise!r}")
    return _REGISTRY[exercise]


def registered(lesson: str | None = None) -> list[str]:
    """Exercise ids with a checker, optionally only one lesson's; imports that lesson's checks."""
    if lesson is not None:
        lookup_module = f"{__package__}.exercises.ex{lesson}"
        try:
            importlib.import_module(lookup_module)
        except ModuleNotFoundError:
            return []
    ids = sorted(_REGISTRY)
    return [i for i in ids if lesson is None or i.split(".")[0] == lesson]


def evaluate(exercise: str, answer: Any) -> Result:
    """Run one check without printing: the grader's entry point."""
    spec = lookup(exercise)
    try:
        message = spec.func(answer)
    except NotImplementedError:
        return Result(exercise, NOT_ATTEMPTED, "the stub still raises NotImplementedError",
                      "replace `raise NotImplementedError` with your code and rerun the cell")
    except CheckFailed as exc:
        return Result(exercise, FAILED, exc.message, exc.hint)
    except Exception as exc:  # the learner's code crashed inside the check
        return Result(exercise, FAILED, f"your code raised {type(exc).__name__}: {exc}",
                      "run your function on a small input in a cell of its own to see why")
    return Result(exercise, PASSED, message or "")


def check(exercise: str, answer: Any) -> Result:
    """Check a learner's answer, print a clear verdict, and leave a record the grader can read."""
    result = evaluate(exercise, answer)
    _emit(result)
    return result


def _emit(result: Result) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # plain python: the printed line is all there is
        print(result.line())
        return
    if get_ipython() is None:
        print(result.line())
        return
    display({"text/plain": result.line(), MIME: asdict(result)}, raw=True)


def expect(condition: bool, message: str, hint: str = "") -> None:
    """Fail a check with a learner-facing message unless `condition` holds."""
    if not condition:
        raise CheckFailed(message, hint)


def expect_callable(answer: Any, name: str) -> None:
    """Fail clearly when a learner passed something that is not a function."""
    expect(callable(answer), f"expected a function `{name}`, got {type(answer).__name__}",
           f"pass the function itself, `{name}`, not its result `{name}(...)`")


def learner_or_reference(exercise: str, answer: Any, reference: Any) -> Any:
    """What later cells train with: the learner's answer once it passes its check, else the
    course's reference, said out loud so nobody mistakes one for the other."""
    if evaluate(exercise, answer).passed:
        return answer
    print("using the course's version until yours passes")
    return reference
