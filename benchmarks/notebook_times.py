"""Seconds per lesson notebook in the tiny profile, and in total: `python benchmarks/notebook_times.py`."""

from __future__ import annotations

import sys

from course_utils.notebooks.build import find_notebooks
from course_utils.notebooks.runner import execute


def main(selectors: list[str]) -> int:
    rows = []
    for path in find_notebooks(selectors):
        run = execute(path, profile="tiny")
        rows.append((path.name, run.seconds, run.error))
        print(f"{path.name:<40} {run.seconds:7.1f} s  {run.error or 'ok'}", flush=True)
    total = sum(seconds for _, seconds, _ in rows)
    print(f"{'total':<40} {total:7.1f} s  ({len(rows)} notebooks, "
          f"slowest {max(rows, key=lambda r: r[1])[0]})")
    return 1 if any(error for *_, error in rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
