"""Exercise checks, split in two so that no verdict depends on code a learner controls.

Writing a check (in `course_utils/exercises/exNN.py`, next to each other):

    @checker("00.2", "choose a mixed-precision mode", answer="choose_precision")
    def probe_precision(choose_precision):           # runs where the learner's code runs
        expect_callable(choose_precision, "choose_precision")
        return [choose_precision(cap) for cap in CASES]   # plain data only

    @judge("00.2")
    def judge_precision(outputs) -> str:               # runs in the grader, sees only data
        for (cap, want), got in zip(CASES.items(), outputs):
            expect(got == want, f"for {cap} you returned {got!r}", "hint ...")
        return "right for CPU, T4, A100 and H100"

- `answer=` names the notebook variable the exercise defines; it is declared only here. The
  check cell calls `check("00.2")` and the grader reads the same name from this registry.
- The **probe** calls the learner's function on the check's inputs and returns plain data:
  None, bool, int, float, str, lists, tuples, dicts, sets, numpy arrays or CPU tensors (see
  `grading.wire`). It may `expect(...)` to fail early (a failure cannot be forged into a pass),
  but it never decides a pass. Describe objects by data: a model by its parameter names, shapes
  and `requires_grad` flags, a tensor on the meta device by its device and dtype strings.
- The **judge** receives that data decoded (tuples stay tuples, arrays come back as numpy) and
  compares it against inputs and expectations it rebuilds itself: never trust an input echoed in
  the data. It raises through `expect` or returns the success message.

In a notebook, `check()` runs probe and judge in the same process for immediate feedback, through
the same JSON boundary. The grader (`course check`) runs the probe in the sandboxed kernel, reads
the record from the kernel's output and runs the judge in its own process.
"""

from __future__ import annotations

import importlib
import json
import re
import signal
import sys
import threading
from dataclasses import dataclass, replace
from typing import Any, Callable

from .grading import wire

PASSED, FAILED, NOT_ATTEMPTED, ERROR = "passed", "failed", "not attempted", "error"
STATUSES = (PASSED, FAILED, NOT_ATTEMPTED, ERROR)
EXERCISE_ID = re.compile(r"\d\d\.\d{1,2}")
OUTCOMES = ("data", "missing", "not_attempted", "failed", "raised", "uncheckable", "timeout", "probe_error")
UNCHECKABLE = "returned an object that cannot be checked"
_MISSING = object()


class CheckFailed(Exception):
    """Raised by a probe or judge with a message a learner can act on (never the answer itself)."""

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
    """One exercise: its id, title, the notebook name of its answer, probe and judge."""

    exercise: str
    title: str
    answer: str
    probe: Callable[[Any], Any]
    judge: Callable[[Any], str | None] | None = None


_REGISTRY: dict[str, Checker] = {}


def checker(exercise: str, title: str, answer: str) -> Callable[[Callable], Callable]:
    """Register the probe of one exercise ("NN.k") and the notebook variable holding its answer."""
    if not EXERCISE_ID.fullmatch(exercise) or not answer.isidentifier():
        raise ValueError(f"bad exercise id {exercise!r} or answer name {answer!r}")

    def register(probe: Callable) -> Callable:
        _REGISTRY[exercise] = Checker(exercise, title, answer, probe)
        return probe

    return register


def judge(exercise: str) -> Callable[[Callable], Callable]:
    """Register the judge of an exercise whose probe is already registered above it."""

    def register(func: Callable) -> Callable:
        _REGISTRY[exercise] = replace(_REGISTRY[exercise], judge=func)
        return func

    return register


def lookup(exercise: str) -> Checker:
    """Find the checker for an exercise id, importing its lesson's module on first use."""
    if not isinstance(exercise, str) or not EXERCISE_ID.fullmatch(exercise):
        raise KeyError(f"not an exercise id: {exercise!r}")
    if exercise not in _REGISTRY:
        lesson = exercise.split(".")[0]
        try:
            importlib.import_module(f"{__package__}.exercises.ex{lesson}")
        except ModuleNotFoundError as exc:
            raise KeyError(f"no checks exist for lesson {lesson!r}") from exc
    if exercise not in _REGISTRY or _REGISTRY[exercise].judge is None:
        raise KeyError(f"no check is registered for exercise {exercise!r}")
    return _REGISTRY[exercise]


def registered(lesson: str | None = None) -> list[str]:
    """Exercise ids with a checker, optionally only one lesson's; imports that lesson's checks."""
    if lesson is not None:
        try:
            importlib.import_module(f"{__package__}.exercises.ex{lesson}")
        except ModuleNotFoundError:
            return []
    ids = sorted(_REGISTRY)
    return [i for i in ids if lesson is None or i.split(".")[0] == lesson]


# the learner's side: run the probe, turn whatever happens into a JSON record -------------------

class _Timeout(BaseException):
    pass


def _limited(func: Callable[[], Any], seconds: float | None) -> Any:
    if not seconds or threading.current_thread() is not threading.main_thread():
        return func()

    def alarm(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return func()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _outcome(func: Callable[[], Any], seconds: float | None) -> dict:
    """Run learner-facing code and describe what happened as plain data."""
    try:
        value = _limited(func, seconds)
    except NotImplementedError:
        return {"outcome": "not_attempted"}
    except CheckFailed as exc:
        return {"outcome": "failed", "message": str(exc.message), "hint": str(exc.hint)}
    except _Timeout:
        return {"outcome": "timeout", "message": f"the check did not finish within {seconds:g} s"}
    except BaseException as exc:  # SystemExit, KeyboardInterrupt, ... from the learner's code
        return {"outcome": "raised", "message": f"{type(exc).__name__}: {exc}"[:300]}
    try:
        return {"outcome": "data", "data": wire.encode(value)}
    except (wire.Uncheckable, ValueError, RecursionError) as exc:
        return {"outcome": "uncheckable", "message": f"{UNCHECKABLE} ({exc})"[:300]}


def probe(exercise: str, answer: Any = _MISSING, extras: list | None = None,
          seconds: float | None = None) -> str:
    """The kernel's half of a check: the probe's data (and hidden-test outputs) as one JSON line.

    Without `answer`, the registered name is looked up in the notebook's namespace. Each item of
    `extras` (hidden tests) is a wire-encoded list of argument tuples to call the answer with."""
    spec = lookup(exercise)
    if answer is _MISSING or isinstance(answer, _Namespace):
        namespace = answer.values if isinstance(answer, _Namespace) else _namespace()
        if spec.answer not in namespace:
            return json.dumps({"exercise": exercise, "outcome": "missing",
                               "message": f"no `{spec.answer}` is defined"})
        answer = namespace[spec.answer]
    record = {"exercise": exercise, **_outcome(lambda: spec.probe(answer), seconds)}
    if extras and record["outcome"] == "data":
        record["extras"] = [_outcome(lambda calls=calls: [answer(*args) for args in wire.decode(calls)],
                                     seconds) for calls in extras]
    return json.dumps(record, allow_nan=False)


@dataclass(frozen=True)
class _Namespace:
    values: dict


def _namespace(fallback: dict | None = None) -> dict:
    """The notebook's variables: IPython's user namespace, else the calling module's globals."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None:
        return shell.user_ns
    if fallback is None:
        raise RuntimeError("no notebook namespace here: pass the answer to check explicitly")
    return fallback


# the grader's side: judge the record, trusting nothing in it but data --------------------------

def _text(value: Any, limit: int = 500) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _verdict(exercise: str, outcome: dict, judge_func: Callable[[Any], Any], label: str = "") -> Result:
    outcome = outcome if isinstance(outcome, dict) else {}
    kind, message, hint = outcome.get("outcome"), _text(outcome.get("message")), _text(outcome.get("hint"))
    if kind == "data":
        try:
            data = wire.decode(outcome.get("data"))
        except (ValueError, RecursionError):
            return Result(exercise, FAILED, label + UNCHECKABLE)
        try:
            said = judge_func(data)
        except CheckFailed as exc:
            return Result(exercise, FAILED, label + exc.message, exc.hint)
        except Exception as exc:  # the data had the wrong shape for this check
            return Result(exercise, FAILED, f"{label}your answer gave data this check cannot use "
                                            f"({type(exc).__name__}: {exc})"[:300],
                          "run your function on a small input in a cell of its own and look at what it returns")
        return Result(exercise, PASSED, _text(said) if said else "")
    if kind == "not_attempted":
        return Result(exercise, NOT_ATTEMPTED, "the stub still raises NotImplementedError",
                      "replace `raise NotImplementedError` with your code and rerun the cell")
    if kind == "failed":
        return Result(exercise, FAILED, label + message, hint)
    if kind == "raised":
        return Result(exercise, FAILED, f"{label}your code raised {message}",
                      "run your function on a small input in a cell of its own to see why")
    if kind in ("uncheckable", "timeout"):
        return Result(exercise, FAILED, label + (message or UNCHECKABLE))
    if kind == "probe_error":
        return Result(exercise, ERROR, f"the check could not run in your notebook ({message})",
                      "restart the kernel and run every cell from the top")
    return Result(exercise, ERROR, f"unreadable record from the notebook ({kind!r})")


def judge_record(exercise: str, record: Any,
                 extra_judges: list[Callable[[Any], Any]] = ()) -> Result:
    """The grader's half: a verdict (with credit over hidden tests) from a probe record."""
    spec = lookup(exercise)
    if not isinstance(record, dict) or record.get("exercise") != exercise:
        return Result(exercise, ERROR, "no readable record for this exercise")
    if record.get("outcome") == "missing":
        return Result(exercise, ERROR, f"no `{spec.answer}` to check")
    results = [_verdict(exercise, record, spec.judge)]
    if results[0].status == PASSED and extra_judges:
        outcomes = record.get("extras")
        if not isinstance(outcomes, list) or len(outcomes) != len(extra_judges):
            outcomes = [{"outcome": None}] * len(extra_judges)
        results += [_verdict(exercise, o, j, "hidden test: ") for o, j in zip(outcomes, extra_judges)]
    chosen = next((r for r in results if r.status != PASSED), results[0])
    chosen.credit = sum(r.status == PASSED for r in results) / len(results)
    return chosen


def parse_record(line: Any) -> dict | None:
    """One probe record from the kernel's text, or None when it is not a JSON object."""
    if not isinstance(line, str) or len(line) > wire.MAX_CHARS:
        return None
    try:
        record = json.loads(line, parse_constant=wire._no_constants)
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def evaluate(exercise: str, answer: Any = _MISSING) -> Result:
    """Probe and judge in this process, through the same JSON boundary the grader uses."""
    if answer is _MISSING:
        answer = _Namespace(_namespace(sys._getframe(1).f_globals))
    line = probe(exercise, answer)
    return judge_record(exercise, parse_record(line))


def check(exercise: str, answer: Any = _MISSING) -> Result:
    """Check a learner's answer (the registered notebook variable by default), print a verdict."""
    if answer is _MISSING:
        answer = _Namespace(_namespace(sys._getframe(1).f_globals))
    result = evaluate(exercise, answer)
    print(result.line())
    return result


def learner_or_reference(exercise: str, answer: Any, reference: Any, name: str = "") -> Any:
    """The learner's answer when its check passes, else the course's reference, saying which.

    Later cells of a lesson train with what this returns, so a learner's passing code drives the
    run and an unfinished exercise (a stub raising NotImplementedError) never stops the lesson.
    """
    label = name or getattr(answer, "__name__", "") or getattr(reference, "__name__", "answer")
    if answer is None:
        result = Result(exercise, NOT_ATTEMPTED, "nothing was defined")
    else:
        result = evaluate(exercise, answer)
    if result.passed:
        print(f"→ using your `{label}` (exercise {exercise} passed)")
        return answer
    print(f"→ using the course's version until yours passes (exercise {exercise}: {result.status})")
    return reference


def expect(condition: bool, message: str, hint: str = "") -> None:
    """Fail a check with a learner-facing message unless `condition` holds."""
    if not condition:
        raise CheckFailed(message, hint)


def expect_callable(answer: Any, name: str) -> None:
    """Fail clearly when a learner passed something that is not a function."""
    expect(callable(answer), f"expected a function `{name}`, got {type(answer).__name__}",
           f"pass the function itself, `{name}`, not its result `{name}(...)`")
