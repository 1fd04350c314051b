"""Checks for lesson 15 (distributed fine-tuning): the global batch and step count, and the
rank-0-only save with a barrier, checked by running it on two real processes."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import torch

from ..checks import CheckFailed, checker, expect, expect_callable, judge

CASES = [((8, 2, 1, 63, 10), (16, 30)), ((4, 8, 4, 1000, 3), (128, 21)), ((16, 1, 1, 100, 1), (16, 6)),
         ((2, 3, 5, 95, 2), (30, 6)), ((1, 4, 2, 64, 5), (8, 40))]


@checker("15.1", "the global batch and the number of optimizer steps", answer="global_batch_and_steps")
def probe_global_batch(global_batch_and_steps) -> list:
    expect_callable(global_batch_and_steps, "global_batch_and_steps")
    return [global_batch_and_steps(*args) for args, _ in CASES]


@judge("15.1")
def judge_global_batch(outputs: list) -> str:
    expect(isinstance(outputs, list) and len(outputs) == len(CASES), "your answer gave no result per case")
    for ((b, p, a, n, e), (want_g, want_s)), got in zip(CASES, outputs):
        expect(isinstance(got, (tuple, list)) and len(got) == 2,
               f"expected a pair (global_batch, steps), got {got!r}", "return global_batch, steps")
        g, s = (int(x) if isinstance(x, (int, float)) and float(x).is_integer() else x for x in got)
        where = f"per-device batch {b}, {p} processes, accumulation {a}"
        if g != want_g:
            hint = ("each process trains on its own per-device batch, and each accumulation step adds "
                    "one more: multiply all three")
            if g == b * a:
                hint = "every process contributes a per-device batch to the same optimizer step"
            elif g == b * p:
                hint = "gradient accumulation also multiplies the examples behind one optimizer step"
            expect(False, f"with {where} you said the global batch is {g}", hint)
        if s != want_s:
            hint = "one optimizer step per global batch; each epoch drops its last partial batch"
            if s == e * -(-n // want_g):
                hint = "the last partial batch of each epoch is dropped: use //, not a rounded-up division"
            elif s == n // want_g:
                hint = "that is one epoch: multiply by the number of epochs"
            elif s == e * (n // (b * p)) or s == e * (n // b):
                hint = "count optimizer steps (one per global batch), not micro-batches or per-device batches"
            expect(False, f"with {where}, {n} examples and {e} epochs you said {s} steps", hint)
    return "right for five configurations, accumulation and dropped partial batches included"
def _rank(index: int, settings: dict, run_dir: str) -> None:
    from ..distributed.worker import save_check

    save_check(settings, Path(run_dir), rank=index, world=2)


def two_ranks(settings: dict, run_dir: Path, timeout: float) -> None:
    """Two ranks forked from this process by `torch.multiprocessing` (no fresh imports: the check
    stays well inside a grader's time limit). Safe here because the ranks run no multi-threaded
    maths, only a barrier and a tiny `torch.save`; killed in `finally`, whatever interrupts."""
    import time

    import torch.multiprocessing as mp

    run_dir.mkdir(parents=True, exist_ok=True)
    context = mp.start_processes(_rank, args=(settings, str(run_dir)), nprocs=2, join=False,
                                 start_method="fork")
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=0.1):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the ranks did not finish within {timeout:g} s")
    except mp.ProcessRaisedException as exc:
        raise RuntimeError(str(exc).strip().splitlines()[-1]) from exc
    except mp.ProcessExitedException as exc:
        raise RuntimeError(f"a rank died: {exc}") from exc
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
            process.join(5)


_VERDICTS: dict[str, tuple[str, str, str]] = {}  # source -> (status, message, hint) of a 2-process run


def _dry_run(save_on_main, folder: Path) -> None:
    """A world of one process: catches stubs and plain errors without paying for a launch."""
    path = folder / "alone.pt"
    save_on_main(0, {"written_by": 0}, str(path), lambda: None)
    expect(path.exists(), "on rank 0 your function wrote nothing to `path`",
           "rank 0 should call torch.save(state, path)")


def _collective_failure(error: str) -> bool:
    """Whether a rank's error is the process group giving up (a peer left or never arrived)."""
    return any(w in error for w in ("DistBackendError", "Connection closed", "Timed out", "timed out",
                                     "Connection reset", "Gloo"))


_RUNS: dict[str, dict] = {}  # source -> what a 2-process run of it did (plain data)


@checker("15.2", "rank 0 saves, every rank waits", answer="save_on_main")
def probe_save_on_main(save_on_main) -> dict:
    from ..distributed.compare import function_source

    expect_callable(save_on_main, "save_on_main")
    source = function_source(save_on_main)
    key = hashlib.sha256(source.encode()).hexdigest()
    if key in _RUNS:
        return _RUNS[key]
    folder = Path(tempfile.mkdtemp(prefix="course-check-15-"))
    try:
        _dry_run(save_on_main, folder)
        path = folder / "checkpoint.pt"
        settings = {"source": source, "name": save_on_main.__name__, "path": str(path),
                    "slow_save": 0.5, "pg_timeout": 10}
        for attempt in (1, 2):
            run_dir = folder / f"run{attempt}"
            try:
                two_ranks(settings, run_dir, timeout=60)
                break
            except (TimeoutError, RuntimeError) as exc:
                # a rank catches every error of the answer's own code (barrier time-outs included),
                # so a collective error that escapes a rank is the process group failing to form
                # or close on a busy host, not the answer: one more launch, then report it
                if attempt == 1 and _collective_failure(str(exc)):
                    continue
                raise CheckFailed(f"the 2-process run did not finish: {str(exc).splitlines()[0]}",
                                  "every rank must reach the same barriers; rank 0 alone writes") from exc
        logs = [json.loads((run_dir / f"rank{r}.json").read_text()) for r in range(2)]
        written_by = None
        if path.exists():
            state = torch.load(path, weights_only=True)
            written_by = state.get("written_by") if isinstance(state, dict) else None
        _RUNS[key] = {"logs": [{"rank": int(log["rank"]), "error": str(log["error"] or ""),
                                "barriers": int(log["barriers"]), "saves": int(log["saves"]),
                                "file_on_return": bool(log["file_on_return"])} for log in logs],
                      "file_exists": path.exists(), "written_by": written_by}
        return _RUNS[key]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@judge("15.2")
def judge_save_on_main(run: dict) -> str:
    logs = run["logs"]
    expect(sorted(log["rank"] for log in logs) == [0, 1], "your answer gave no log for each of the 2 ranks")
    own = [log for log in logs if log["error"] and not _collective_failure(log["error"])]
    if own:
        error = own[0]["error"]
        hint = ("each rank rebuilds your function from its source and gives it only torch and os: "
                "import anything else inside the function" if error.startswith("NameError")
                else "call it yourself as save_on_main(1, {}, 'x.pt', lambda: None) to see why")
        expect(False, f"on rank {own[0]['rank']} your function raised {error}", hint)
    barriers = [log["barriers"] for log in logs]
    expect(len(set(barriers)) == 1 and not any(log["error"] for log in logs),
           f"the ranks called barrier() {barriers} times: a rank waits forever at a barrier the "
           "others never reach", "call barrier() outside the `if rank == 0:`, on every rank")
    writers = [log["rank"] for log in logs for _ in range(log["saves"])]
    expect(bool(writers), "no rank wrote the checkpoint", "rank 0 should call torch.save(state, path)")
    expect(len(writers) == 1, f"the checkpoint was written {len(writers)} times (by ranks {sorted(set(writers))})",
           "only the main process (rank 0) writes; the others skip the save")
    expect(writers == [0] and run["file_exists"] is True and run["written_by"] == 0,
           f"rank {writers[0]} wrote the checkpoint", "the main process is rank 0")
    early = [log["rank"] for log in logs if not log["file_on_return"]]
    expect(not early, f"rank {early[0] if early else ''} returned before the checkpoint existed (rank 0 was "
           "still writing)", "after the save, call barrier() on every rank so no rank moves on (or reads, "
           "or exits) early")
    return "on 2 real processes: one file, written by rank 0, and no rank moved on before it existed"
