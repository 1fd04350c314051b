"""Client-side helpers for fine-tuning jobs, for the local service and OpenAI alike."""

from __future__ import annotations

import time
from typing import Any, Callable

from course_utils.service.store import TERMINAL


def follow_job(client: Any, job_id: str, poll: float = 0.5, timeout: float = 3600) -> Any:
    """Poll a fine-tuning job with a progress bar fed by its step events until it succeeds,
    fails or is cancelled, and return the final job; raise TimeoutError (the job keeps running)
    if it has not finished within `timeout` seconds."""
    from tqdm.auto import tqdm

    bar, deadline = tqdm(desc=job_id, unit="step"), time.monotonic() + timeout
    try:
        while True:
            job = client.fine_tuning.jobs.retrieve(job_id)
            latest = client.fine_tuning.jobs.list_events(job_id, limit=10).data
            steps = [e.data for e in latest if getattr(e, "type", "") == "metrics" and e.data]
            if steps:
                bar.total = steps[0].get("total_steps") or bar.total
                bar.n = steps[0].get("step", bar.n)
                bar.set_postfix(status=job.status, loss=f"{steps[0].get('train_loss', float('nan')):.3f}")
            else:
                bar.set_postfix(status=job.status)
            bar.refresh()
            if job.status in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"fine-tuning job {job_id} is still {job.status} after {timeout:g} s; it "
                                   "keeps running: call follow_job again, or cancel it")
            time.sleep(poll)
    finally:
        bar.close()


def latencies(call: Callable[[], Any], n: int) -> list[float]:
    """Seconds of each of `n` calls in a row: how responsive a service is, idle or while it trains."""
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out
