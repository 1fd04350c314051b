"""The program each rank runs: `python -m torch.distributed.run ... -m course_utils.distributed.worker
JOB RUN_DIR`. It reads the job's settings from RUN_DIR, runs the job, and rank 0 leaves its result
there for the notebook. Jobs import only what they need: a fresh interpreter pays for every import.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Callable


def learner_function(source: str, name: str) -> Callable:
    """Rebuild a function a learner wrote in a notebook from its source, in a fresh process: it
    sees only its own code plus `torch` and `os`, so it must not lean on other notebook names."""
    import torch

    namespace = {"torch": torch, "os": os, "__name__": "learner"}
    exec(compile(source, f"<{name}>", "exec"), namespace)
    return namespace[name]


def save_check(settings: dict, run_dir: Path, rank: int | None = None, world: int = 2) -> None:
    """Exercise 15.2 on real ranks: run the learner's save function with a spy on `torch.save`
    and on the barrier, and record what each rank did. Under torchrun the ranks meet through the
    environment; forked from the checker (`rank` given) through a file store in `run_dir`."""
    import torch
    import torch.distributed as dist

    timeout = timedelta(seconds=settings["pg_timeout"])
    if rank is None:
        dist.init_process_group("gloo", timeout=timeout)
    else:
        sys.stdout = sys.stderr = open(run_dir / f"out{rank}.txt", "w")  # not the kernel's streams
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # the ranks are local: no host name lookup
        dist.init_process_group("gloo", init_method=f"file://{run_dir / 'store'}", rank=rank,
                                world_size=world, timeout=timeout)
    rank = dist.get_rank()
    log = {"rank": rank, "saves": 0, "barriers": 0, "error": None}
    real_save = torch.save

    def spy(obj, f, *args, **kwargs):
        log["saves"] += 1
        if rank == 0:  # a slow disk: a rank that does not wait returns before the file exists
            time.sleep(settings["slow_save"])
        return real_save(obj, f, *args, **kwargs)

    def barrier() -> None:
        log["barriers"] += 1
        dist.barrier()

    try:
        fn = learner_function(settings["source"], settings["name"])
        torch.save = spy
        fn(rank, {"written_by": rank, "weights": torch.full((3,), float(rank))}, settings["path"], barrier)
    except Exception as exc:  # the learner's error, reported by the checker
        log["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        torch.save = real_save
    log["file_on_return"] = os.path.exists(settings["path"])
    (run_dir / f"rank{rank}.json").write_text(json.dumps(log))
    dist.destroy_process_group()


def sleep(settings: dict, run_dir: Path) -> None:
    """A job that joins the process group and then waits: what the clean-up tests interrupt."""
    import torch.distributed as dist

    dist.init_process_group("gloo", timeout=timedelta(seconds=settings.get("pg_timeout", 30)))
    (run_dir / f"pid{dist.get_rank()}").write_text(str(os.getpid()))
    time.sleep(settings["seconds"])
    dist.destroy_process_group()


def _lesson(settings: dict, run_dir: Path):
    from course_utils.distributed.ranks import lesson

    return lesson(settings, run_dir)


JOBS: dict[str, Callable[[dict, Path], object]] = {"lesson": _lesson, "save_check": save_check,
                                                   "sleep": sleep}


def main(argv: list[str]) -> int:
    job, run_dir = argv[0], Path(argv[1])
    deadline = int(os.environ.get("COURSE_DIST_DEADLINE", "0"))
    if deadline:  # last line of defence: even an orphaned rank ends (SIGALRM's default kills it)
        signal.alarm(deadline)
    settings = json.loads((run_dir / "settings.json").read_text())
    rank = int(os.environ.get("RANK", "0"))
    try:
        result = JOBS[job](settings, run_dir)
    except BaseException:
        (run_dir / f"error{rank}.txt").write_text(traceback.format_exc())
        raise
    if result is not None:
        import torch

        torch.save(result, run_dir / "result.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
