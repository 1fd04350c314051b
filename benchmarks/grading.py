"""Seconds per submission when grading a class: N copies of a solution notebook, --jobs at once,
with the sandbox on (bwrap) and off (none).

    python benchmarks/grading.py [--lesson 00] [--copies 30] [--jobs 2] [--sandbox bwrap none]
                                 [--run-machine-reports]

Lesson 00's doctor cell (role `machine-report`) is skipped in grading unless --run-machine-reports:
it imports bitsandbytes (and with it torch.compile's stack) to try a 4-bit matmul, about 2.3 s of
CPU per kernel, to describe the sandbox.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from course_utils.checks import PASSED
from course_utils.grading.grade import Limits, grade_all, resolve_sandbox
from course_utils.grading.submissions import gather
from course_utils.notebooks.build import find_notebooks


def measure(solution: Path, copies: int, jobs: int, sandbox: str,
            machine_reports: bool = False) -> tuple[float, float, int]:
    """Wall seconds per submission, mean kernel seconds, and how many got full credit."""
    with tempfile.TemporaryDirectory() as folder:
        for i in range(copies):
            shutil.copy(solution, Path(folder) / f"learner{i:03d}_{solution.name}")
        start = time.perf_counter()
        with gather([folder]) as submissions:
            grades = grade_all(submissions, Limits(sandbox=sandbox, machine_reports=machine_reports), jobs=jobs, progress=False)
        wall = time.perf_counter() - start
    passed = sum(all(r.status == PASSED for r in g.results) and g.problem is None for g in grades)
    return wall / len(grades), sum(g.seconds for g in grades) / len(grades), passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lesson", default="00")
    parser.add_argument("--copies", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sandbox", nargs="+", default=["bwrap", "none"])
    parser.add_argument("--run-machine-reports", action="store_true")
    args = parser.parse_args()
    solution = find_notebooks([args.lesson])[0]
    ok = True
    print(f"lesson {solution.stem}: {args.copies} submissions, --jobs {args.jobs}, machine-report cells "
          + ("run" if args.run_machine_reports else "skipped"))
    for kind in args.sandbox:
        box = resolve_sandbox(kind)
        per, kernel, passed = measure(solution, args.copies, args.jobs, kind, args.run_machine_reports)
        ok &= passed == args.copies
        print(f"sandbox {box.kind:5s}: {per:.2f} s per submission (wall), kernel run {kernel:.1f} s on "
              f"average; full credit in {passed}/{args.copies}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
