"""The two cells the grader adds around a learner's notebook, so verdicts cannot be faked.

The first runs before any learner code: it loads the checks afresh from their files under a
private package name (so monkeypatching `course_utils` in the notebook changes nothing) and opens
a result file whose path the notebook never sees. The last cell evaluates each exercise's answer
with those private checks, with a time limit per check, and writes one JSON line per exercise
through the file handle and `os.write` captured before the learner's cells ran. Printed text,
check cells and redefined check functions play no part in the grade.
"""

from __future__ import annotations

import secrets
from pathlib import Path

PRIVATE = "_course_grader"

PREAMBLE = '''\
def {name}_setup():
    import importlib, importlib.util, json, os, sys
    spec = importlib.util.spec_from_file_location(
        "{private}", {init!r}, submodule_search_locations=[{package!r}])
    package = importlib.util.module_from_spec(spec)
    sys.modules["{private}"] = package
    spec.loader.exec_module(package)
    checks = importlib.import_module("{private}.checks")
    for exercise in {exercises!r}:
        checks.lookup(exercise)
    fd = os.open({result!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return checks, os.write, fd, json.dumps, os.close

{name} = {name}_setup()
del {name}_setup
'''

FINAL = '''\
def {name}_run(state, targets, extras_path, seconds):
    import signal
    checks, write, fd, dumps, close = state
    extras = {{}}
    if extras_path:
        namespace = {{"CheckFailed": checks.CheckFailed, "expect": checks.expect,
                      "extra": lambda ex: (lambda f: extras.setdefault(ex, []).append(f) or f)}}
        exec(compile(open(extras_path).read(), extras_path, "exec"), namespace)

    class CheckTimeout(Exception):
        pass

    def alarm(signum, frame):
        raise CheckTimeout(f"the check did not finish within {{seconds}} s")

    def run(exercise, func, answer):
        signal.signal(signal.SIGALRM, alarm)
        signal.alarm(seconds)
        try:
            if func is None:
                return checks.evaluate(exercise, answer)
            try:
                func(answer)
                return checks.Result(exercise, checks.PASSED)
            except NotImplementedError:
                return checks.Result(exercise, checks.NOT_ATTEMPTED)
            except checks.CheckFailed as exc:
                return checks.Result(exercise, checks.FAILED, "hidden test: " + exc.message, exc.hint)
            except Exception as exc:
                return checks.Result(exercise, checks.FAILED,
                                     f"hidden test: {{type(exc).__name__}}: {{exc}}")
        finally:
            signal.alarm(0)

    namespace = get_ipython().user_ns
    for exercise, expression in targets:
        try:
            answer = eval(expression, namespace)
        except BaseException as exc:
            record = {{"exercise": exercise, "status": "missing",
                      "message": f"{{type(exc).__name__}}: {{exc}}"}}
        else:
            results = [run(exercise, None, answer)]
            if results[0].status != checks.NOT_ATTEMPTED:
                results += [run(exercise, f, answer) for f in extras.get(exercise, [])]
            first_bad = next((r for r in results if r.status != checks.PASSED), None)
            chosen = first_bad or results[0]
            record = {{"exercise": exercise, "status": chosen.status, "message": chosen.message,
                      "hint": chosen.hint,
                      "credit": sum(r.status == checks.PASSED for r in results) / len(results)}}
        write(fd, (dumps(record) + "\\n").encode())
    close(fd)


{name}_run({name}, {targets!r}, {extras!r}, {seconds!r})
'''


def cells(exercises: list[tuple[str, str]], result_file: Path, extras: Path | None,
          seconds_per_check: int = 30) -> tuple[str, str]:
    """Sources of the grader's first and last cells for these (exercise id, answer expression)
    pairs; the state lives under a random name that learner code cannot know in advance."""
    package = Path(__file__).resolve().parent.parent
    name = f"_grader_{secrets.token_hex(8)}"
    first = PREAMBLE.format(name=name, private=PRIVATE, init=str(package / "__init__.py"),
                            package=str(package), exercises=[e for e, _ in exercises],
                            result=str(result_file))
    last = FINAL.format(name=name, targets=exercises, extras=str(extras) if extras else None,
                        seconds=seconds_per_check)
    return first, last
