"""Seconds per submission when grading a class: N copies of a solution notebook, --jobs at once.

    python benchmarks/grading.py [--lesson 00] [--copies 30] [--jobs 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from course_utils.checks import PASSED
from course_utils.grading.grade import Limits, grade_all
from course_utils.notebooks.build import find_notebooks
from course_utils.grading.submissions import gather


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lesson", default="00")
    parser.add_argument("--copies", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    solution = find_notebooks([args.lesson])[0]
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.copies):
            shutil.copy(solution, Path(folder) / f"learner{i:03d}_{solution.name}")
        start = time.perf_counter()
        grades = grade_all(gather([folder]), Limits(), jobs=args.jobs)
        wall = time.perf_counter() - start
    passed = sum(all(r.status == PASSED for r in g.results) and g.problem is None for g in grades)
    kernel = sum(g.seconds for g in grades) / len(grades)
    print(f"lesson {solution.stem}: {args.copies} submissions, --jobs {args.jobs}")
    print(f"all exercises passed in {passed}/{len(grades)}")
    print(f"wall clock {wall:.1f} s = {wall / len(grades):.2f} s per submission "
          f"(each kernel run {kernel:.1f} s on average; {kernel * len(grades) / wall:.2f}x from parallelism)")
    return 0 if passed == len(grades) else 1


if __name__ == "__main__":
    raise SystemExit(main())
