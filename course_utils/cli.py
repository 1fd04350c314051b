"""The `course` command: doctor, list, build, run and check."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm.auto import tqdm


def _doctor(args: argparse.Namespace) -> int:
    from course_utils.doctor import report

    lines, warnings = report(check_network=not args.offline)
    print("\n".join(lines))
    for warning in warnings:
        print(f"WARNING: {warning}")
    return 1 if warnings else 0


def _list(args: argparse.Namespace) -> int:
    from course_utils.notebooks.build import lessons

    rows = [(l.number, l.title, l.tiny_budget, l.full_budget) for l in lessons()]
    width = max((len(r[1]) for r in rows), default=5)
    print(f"{'#':<3} {'title':<{width}}  {'tiny (CPU)':<12} full (GPU)")
    for number, title, tiny, full in rows:
        print(f"{number:<3} {title:<{width}}  {tiny:<12} {full}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from course_utils.notebooks.build import build, course_root

    changed = build(check_only=args.check)
    root = course_root()
    names = [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in changed]
    if args.check:
        if names:
            print("out of date (run `course build`):\n  " + "\n  ".join(names))
            return 1
        print("lessons/ and solutions/ are in sync")
        return 0
    print(f"wrote {len(names)} file(s)" + ("".join(f"\n  {n}" for n in names)))
    return 0


def _rehearsal_profile(args: argparse.Namespace) -> None:
    if args.rehearsal and args.profile != "full":
        raise ValueError("--rehearsal rehearses the full profile: add --profile full")


def _run(args: argparse.Namespace) -> int:
    import nbformat

    from course_utils.notebooks.build import find_notebooks, lesson_info
    from course_utils.notebooks.runner import execute

    from course_utils.profile import cache_dir

    _rehearsal_profile(args)
    paths = find_notebooks(args.lessons)
    out = Path(args.out) if args.out else cache_dir("executed")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for path in paths:
        tqdm.write(f"running {path.name} ({args.profile}{', rehearsal' if args.rehearsal else ''}) ...")
        timeout = args.timeout or lesson_info(path).limits(args.profile).notebook_seconds
        run = execute(path, profile=args.profile, timeout=timeout, rehearsal=args.rehearsal)
        results.append(run)
        nbformat.write(run.notebook, str(out / path.name))
        status = "ok" if run.error is None else f"FAILED: {run.error}"
        tqdm.write(f"  {run.seconds:6.1f} s  {status}")
    width = max(len("notebook"), *(len(r.path.name) for r in results))
    print(f"\n{'notebook':<{width}} {'seconds':>8}  result")
    for run in results:
        print(f"{run.path.name:<{width}} {run.seconds:8.1f}  {'ok' if run.error is None else 'FAILED'}")
    print(f"{'total':<{width}} {sum(r.seconds for r in results):8.1f}")
    print(f"executed copies: {out}")
    failed = [r for r in results if r.error]
    for run in failed:
        print(f"\n{run.path.name} failed: {run.error}", file=sys.stderr)
    return 1 if failed else 0


def _check(args: argparse.Namespace) -> int:
    from course_utils.grading.grade import (Limits, details, grade_all, resolve_sandbox, safe, table,
                                            write_report)
    from course_utils.grading.submissions import gather
    from course_utils.rehearsal import kernel_environment

    _rehearsal_profile(args)
    limits = Limits(notebook_seconds=args.timeout, cell_seconds=args.cell_timeout,
                    memory_gb=args.memory_gb, profile=args.profile, extra_checks=args.extra_checks,
                    sandbox=args.sandbox, machine_reports=args.run_machine_reports,
                    environment=kernel_environment() if args.rehearsal else {})
    if args.extra_checks and not Path(args.extra_checks).is_file():
        raise FileNotFoundError(f"no extra-checks file {args.extra_checks}")
    box = resolve_sandbox(args.sandbox)
    print(f"sandbox: {box.kind} ({box.reason})", file=sys.stderr)
    if box.warning:
        print(box.warning, file=sys.stderr)
    with gather(args.paths) as submissions:
        grades = grade_all(submissions, limits, jobs=args.jobs)
    print(table(grades))
    reports = sum(len(g.reports_skipped) for g in grades)
    if reports:
        print(f"not run: {reports} machine-report cell(s) in {sum(bool(g.reports_skipped) for g in grades)} "
              "submission(s); in grading they would describe the sandbox (--run-machine-reports runs them)",
              file=sys.stderr)
    extra = details(grades)
    if extra:
        print("\n" + extra)
    for target in args.report or []:
        write_report(grades, Path(target))
        print(f"wrote {safe(target)}")
    return 0 if grades and all(g.ok for g in grades) else 1


def _serve_openai(args: argparse.Namespace) -> int:
    from course_utils.service.server import serve
    from course_utils.service.store import FolderInUse
    from course_utils.profile import cache_dir

    try:
        serve(args.data or cache_dir("openai_service"), args.host, args.port, args.api_key, args.profile,
              args.max_running)
    except FolderInUse as exc:
        print(f"course serve-openai: {exc}", file=sys.stderr)
        return 2
    return 0


DERIVED = ("(default: tiny 600 s per notebook, 120 s per cell, 6 GB; full: from each lesson's "
           "stated budget, see `course list`)")


def parser() -> argparse.ArgumentParser:
    """The argument parser, exposed so tests can check the documented commands exist."""
    p = argparse.ArgumentParser(prog="course", description="Run, build and grade the course.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("doctor", help="check this machine: packages, GPU, bitsandbytes, profile")
    d.add_argument("--offline", action="store_true", help="skip the network check")
    d.set_defaults(func=_doctor)
    sub.add_parser("list", help="the lessons with titles and budgets").set_defaults(func=_list)
    b = sub.add_parser("build", help="write lessons/ from solutions/")
    b.add_argument("--check", action="store_true", help="only report drift; exit 1 if any")
    b.set_defaults(func=_build)
    r = sub.add_parser("run", help="execute lessons headless and print seconds per notebook")
    r.add_argument("lessons", nargs="*", help="numbers, names or paths (default: all solutions)")
    r.add_argument("--profile", choices=("tiny", "full"), default="tiny")
    r.add_argument("--out", help="folder for the executed copies (default: the course cache)")
    r.add_argument("--timeout", type=int, default=None, help=f"seconds allowed per notebook {DERIVED}")
    r.add_argument("--rehearsal", action="store_true",
                   help="with --profile full: hub models and data replaced by local stand-ins "
                        "(real classes, shrunk, random weights), offline")
    r.set_defaults(func=_run)
    c = sub.add_parser("check", help="grade notebooks exercise by exercise",
                       description="Grade notebooks exercise by exercise. Exit status: 0 when every "
                       "exercise of every submission gets full credit; 1 when any exercise is below "
                       "full credit (failed, error or not attempted) or a submission cannot be "
                       "graded; 2 on bad arguments.")
    c.add_argument("paths", nargs="+", help="notebooks, folders of notebooks, or .zip files")
    c.add_argument("--report", action="append", metavar="FILE.csv|FILE.json|FILE.html",
                   help="also write verdicts to this file (repeatable)")
    c.add_argument("--profile", choices=("tiny", "full"), default="tiny")
    c.add_argument("--jobs", type=int, default=1, help="submissions graded at once")
    c.add_argument("--rehearsal", action="store_true",
                   help="with --profile full: hub models and data replaced by local stand-ins "
                        "(real classes, shrunk, random weights), offline")
    c.add_argument("--timeout", type=int, default=None, help=f"seconds allowed per notebook {DERIVED}")
    c.add_argument("--cell-timeout", type=int, default=None,
                   help=f"seconds allowed per cell; the cell is interrupted, the rest still runs {DERIVED}")
    c.add_argument("--memory-gb", type=float, default=None,
                   help="memory a submission may allocate (an address-space rlimit, on top of about "
                        f"4 GB the libraries reserve); beyond it allocations fail with MemoryError {DERIVED}")
    c.add_argument("--extra-checks", metavar="FILE.py",
                   help="hidden tests, read only by the grader: @extra(\"NN.k\", calls=[(args...), ...]) "
                        "on a function that judges the answer's return values")
    c.add_argument("--sandbox", choices=("auto", "bwrap", "docker", "none"), default="auto",
                   help="where learner code runs: auto = the strongest that works here (bwrap), "
                        "none = unconfined, with a warning on every run")
    c.add_argument("--run-machine-reports", action="store_true",
                   help="also run cells that only report the machine (lesson 00's doctor; cell role "
                        "`machine-report`): skipped by default, since in grading they describe the sandbox")
    c.set_defaults(func=_check)
    s = sub.add_parser("serve-openai", help="a local OpenAI-compatible fine-tuning service")
    s.add_argument("--host", default="127.0.0.1", help="interface (default: loopback only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--api-key", default="sk-local-course", help="the Bearer key clients must send")
    s.add_argument("--data", help="folder for files, jobs and models (default: the course cache)")
    s.add_argument("--profile", choices=("tiny", "full"), default="tiny",
                   help="which base model (full: a 0.5B instruct model on the GPU when there is one)")
    s.add_argument("--max-running", type=int, default=1, help="fine-tuning jobs trained at once; the rest queue")
    s.set_defaults(func=_serve_openai)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"course {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
