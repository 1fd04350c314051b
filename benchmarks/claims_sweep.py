"""Every solution's claims over seeds and numeric paths: what a threshold must survive.

A learner's laptop is not the machine a lesson was written on: another CPU runs other oneDNN
kernels (AVX-512, AVX2, SSE4.1, Apple's), other thread counts split reductions differently, and
another seed draws other samples and initialisations. A claim's threshold must sit outside the
spread all of these cause. This sweep runs every solution notebook (`tiny`) with `COURSE_SEED`
0-4 on two numeric paths, records every claim with its numbers (`COURSE_CLAIMS_LOG`, with
`COURSE_CLAIMS=record` so one failing claim does not hide the rest), and writes the table of
`docs/results.md`: per claim, how often it held and the range of each number behind it.

    python benchmarks/claims_sweep.py                      # everything: 16 lessons x 5 seeds x 2 paths
    python benchmarks/claims_sweep.py 02 14 --seeds 0 3    # a part, merged into the stored results
    python benchmarks/claims_sweep.py --tests              # the tests that assert a training outcome
    python benchmarks/claims_sweep.py --report             # rewrite the table from the stored results

Each path gets a fresh cache, as a new machine would: the checkpoints the course pretrains are
built on that path too. Raw rows go to `benchmarks/results/claims_sweep.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from course_utils.numeric_paths import NUMERIC_PATHS

ROOT = Path(__file__).resolve().parent.parent
RAW = ROOT / "benchmarks" / "results" / "claims_sweep.jsonl"
# rows of a sweep under way, one file per sweep so that two sweeps at once keep their own
PARTIAL = RAW.with_name(f"claims_sweep.partial.{os.getpid()}.jsonl")
RESULTS = ROOT / "docs" / "results.md"
BEGIN, END = "<!-- claims-sweep:begin -->", "<!-- claims-sweep:end -->"

# `default` is the machine as it comes; `portable` what another laptop may compute with
PATHS = NUMERIC_PATHS
# Tests whose assertions are training outcomes: they take their seed from COURSE_SEED (the
# `course_seed` fixture) and assert through `claim`, so the sweep measures their margins too.
TRAINING_TESTS = (
    "tests/test_causal_lm.py::test_base_model_knows_the_world",
    "tests/test_causal_lm.py::test_lora_adaptation_beats_base_on_held_out_animals",
    "tests/test_dpo.py::test_dpo_train_moves_held_out_rewards_toward_the_preferred_answers",
    "tests/test_peft.py::test_qlora_loss_decreases_on_cpu",
    "tests/test_sft.py::test_sft_train_teaches_the_base_to_answer_held_out_prompts",
    "tests/test_vision.py::test_source_model_is_really_pretrained",
    "tests/test_vision.py::test_transfer_beats_scratch_on_the_smallest_labelled_set",
    "tests/test_learning_curves.py::test_pretrained_beats_scratch_on_the_smallest_set",
    "tests/test_openai_service.py::test_fine_tuned_model_answers_in_the_trained_style",
    "tests/test_openai_service.py::test_a_dpo_job_moves_held_out_answers_away_from_the_rejected_style",
)
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "MPLBACKEND": "agg", "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}


def cpu_name() -> str:
    """This machine's CPU as the table names it: model, widest vector unit, cores."""
    info = Path("/proc/cpuinfo")
    text = info.read_text() if info.exists() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")),
                 platform.processor() or platform.machine())
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2" if flags else "?"
    return f"{model} ({isa}, {os.cpu_count()} cores)"


def worker(path_name: str, seed: int, lessons: list[str], cache: str) -> None:
    """Run the lessons one after another in this process (environment set per lesson), one JSON
    row per lesson on stdout."""
    if lessons == ["--tests"]:
        return _test_worker(path_name, seed, cache)
    from course_utils.notebooks.build import find_notebooks
    from course_utils.notebooks.runner import execute

    for notebook in find_notebooks(lessons):
        with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as log:
            os.environ.update(COURSE_CLAIMS_LOG=log.name, COURSE_CLAIMS="record",
                              COURSE_SEED=str(seed), COURSE_CACHE=cache)
            run = execute(notebook, profile="tiny")
            claims = [json.loads(line) for line in Path(log.name).read_text().splitlines()]
        print(json.dumps({"lesson": notebook.stem, "path": path_name, "seed": seed,
                          "seconds": round(run.seconds, 1), "error": run.error, "claims": claims}),
              flush=True)


def _test_worker(path_name: str, seed: int, cache: str) -> None:
    """The training-outcome tests in one pytest run, their claims recorded as one row."""
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as log:
        env = dict(os.environ, COURSE_CLAIMS_LOG=log.name, COURSE_CLAIMS="record", COURSE_SEED=str(seed),
                   COURSE_NUMERIC_PATH=path_name, COURSE_TESTS_TMP=cache)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", *TRAINING_TESTS],
                              cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        claims = [json.loads(line) for line in Path(log.name).read_text().splitlines()]
    error = None if done.returncode == 0 else (done.stdout.strip().splitlines() or ["pytest failed"])[-1]
    print(json.dumps({"lesson": "tests", "path": path_name, "seed": seed,
                      "seconds": round(time.perf_counter() - start, 1), "error": error, "claims": claims}),
          flush=True)


CPU = cpu_name()


def _spawn(path_name: str, seed: int, lessons: list[str], cache: Path) -> list[dict]:
    env = dict(os.environ, **OFFLINE, **PATHS[path_name])
    for key in ("COURSE_SEED", "COURSE_CLAIMS", "COURSE_CLAIMS_LOG", "COURSE_REHEARSAL"):
        env.pop(key, None)
    cmd = [sys.executable, __file__, "--worker", path_name, str(seed), str(cache), *lessons]
    start, rows = time.perf_counter(), []
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) as worker_process:
        for line in worker_process.stdout:
            if line.startswith("{"):
                rows.append({**json.loads(line), "cpu": CPU})
                with open(PARTIAL, "a", encoding="utf-8") as partial:  # kept if the sweep is stopped
                    partial.write(json.dumps(rows[-1]) + "\n")
    held = sum(c["holds"] for r in rows for c in r["claims"])
    total = sum(len(r["claims"]) for r in rows)
    errors = [f"{r['lesson']}: {r['error']}" for r in rows if r["error"]]
    print(f"{path_name:>8} seed {seed}: {held}/{total} claims held, {len(rows)} lessons, "
          f"{time.perf_counter() - start:.0f} s" + "".join(f"\n    error {e}" for e in errors),
          flush=True)
    return rows


def sweep(lessons: list[str], seeds: list[int], paths: list[str], jobs: int) -> list[dict]:
    """Run every (path, seed) pair; the first seed of each path builds that path's cache alone."""
    caches = {p: Path(tempfile.mkdtemp(prefix=f"claims-sweep-{p}-")) for p in paths}
    rows: list[dict] = []
    # warm each path's cache with its first seed, then the rest in parallel
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for batch in ([(p, seeds[0]) for p in paths], [(p, s) for p in paths for s in seeds[1:]]):
            for result in pool.map(lambda job: _spawn(job[0], job[1], lessons, caches[job[0]]), batch):
                rows.extend(result)
    return rows


def _merge(new: list[dict]) -> list[dict]:
    """Stored rows, with the runs just made replacing the same (lesson, path, seed)."""
    old = [json.loads(line) for line in RAW.read_text().splitlines()] if RAW.exists() else []
    PARTIAL.unlink(missing_ok=True)
    fresh = {(r["lesson"], r["path"], r["seed"]) for r in new}
    rows = [r for r in old if (r["lesson"], r["path"], r["seed"]) not in fresh] + new
    RAW.parent.mkdir(parents=True, exist_ok=True)
    RAW.write_text("".join(json.dumps(r) + "\n" for r in sorted(
        rows, key=lambda r: (r["lesson"], r["path"], r["seed"]))))
    return rows


def _range(values: list[float]) -> str:
    lo, mid, hi = min(values), statistics.median(values), max(values)
    fmt = lambda v: f"{v:.4g}"
    return fmt(lo) if lo == hi else f"{fmt(lo)} / {fmt(mid)} / {fmt(hi)}"


def report(rows: list[dict]) -> str:
    """The markdown table: one row per claim, in lesson order."""
    runs = {(r["path"], r["seed"]) for r in rows}
    paths = sorted({p for p, _ in runs})
    seeds = sorted({s for _, s in runs})
    shown_paths = "; ".join(f"`{p}`: " + " ".join(f"{k}={v}" for k, v in PATHS[p].items() if k != "MKL_NUM_THREADS")
                            for p in paths)
    lessons_on: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        lessons_on[r.get("cpu", "a CPU not recorded")].add(r["lesson"][:2] if r["lesson"] != "tests" else "tests")
    machines = "; ".join(f"{cpu}: {', '.join(sorted(ls))}" for cpu, ls in sorted(lessons_on.items()))
    out = [f"Runs on {machines}.", "", f"{len(seeds)} seeds ({', '.join(map(str, seeds))}) x {len(paths)} numeric paths ({shown_paths}), "
           "each path with a cache built from scratch. **held**: runs in which the claim held, of all "
           "runs; numbers: min / median / max over the runs (one value: the same in all).", "",
           "| lesson | claim | held | numbers |", "|---|---|---|---|"]
    by_claim: dict[tuple[str, str], list[dict]] = defaultdict(list)
    errors = []
    for r in sorted(rows, key=lambda r: r["lesson"]):
        if r["error"]:
            errors.append(f"{r['lesson']} ({r['path']}, seed {r['seed']}): {r['error']}")
        for c in r["claims"]:
            by_claim[(r["lesson"], c["text"])].append(c)
    for (lesson, text), cs in by_claim.items():
        names = list(cs[0]["numbers"])
        shown = []
        for name in names:
            values = [c["numbers"].get(name) for c in cs]
            numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            shown.append(f"{name} {_range(numeric)}" if len(numeric) == len(values)
                         else f"{name} {values[0]}")
        held = sum(c["holds"] for c in cs)
        mark = "" if held == len(cs) else " **✘**"
        text_md = text.replace("|", "\\|")
        out.append(f"| {lesson[:2] if lesson != 'tests' else 'test'} | {text_md} | {held}/{len(cs)}{mark} | {'; '.join(shown)} |")
    seconds = defaultdict(list)
    for r in rows:
        seconds[r["lesson"]].append(r["seconds"])
    out += ["", "Seconds per lesson in the sweep (two runs at a time on 2 cores, so slower than "
            "alone): " + ", ".join(f"{k[:5] if k == 'tests' else k[:2]} {max(v):.0f}"
                                    for k, v in sorted(seconds.items())) + "."]
    if errors:
        out += ["", "Runs that stopped with an error:"] + [f"- {e}" for e in errors]
    return "\n".join(out)


def write_results(table: str) -> None:
    text = RESULTS.read_text()
    block = f"{BEGIN}\n{table}\n{END}"
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Claims across seeds and numeric paths (`benchmarks/claims_sweep.py`)\n\n" + block + "\n"
    RESULTS.write_text(text)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        path_name, seed, cache, *lessons = argv[1:]
        worker(path_name, int(seed), lessons, cache)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS))
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--tests", action="store_true",
                        help="sweep the tests that assert a training outcome instead of the lessons")
    parser.add_argument("--report", action="store_true", help="only rewrite the table")
    args = parser.parse_args(argv)
    if args.report:  # the stored rows, and those of a sweep that was stopped
        stopped = sorted(RAW.parent.glob("claims_sweep.partial.*.jsonl"))
        rows = _merge([json.loads(line) for f in stopped for line in f.read_text().splitlines()])
        for f in stopped:
            f.unlink()
    else:
        selection = ["--tests"] if args.tests else args.lessons
        rows = _merge(sweep(selection, args.seeds, args.paths, args.jobs))
    table = report(rows)
    write_results(table)
    print(table)
    failed = [r for r in rows for c in r["claims"] if not c["holds"]]
    return 1 if failed or any(r["error"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
