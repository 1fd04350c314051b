"""Latency of the local OpenAI-compatible service while a fine-tuning job trains, against idle.

Starts the service in this process, times `GET /v1/models` and a short chat completion with the
official `openai` client while nothing runs, then again while a LoRA job trains (it is cancelled
afterwards), and prints median and worst latencies with their ratio.

    python benchmarks/service_latency.py --requests 20
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from openai import OpenAI

from course_utils.llm.causal_lm import style_pairs
from course_utils.llm.chat_data import chat_example, write_jsonl
from course_utils.service.client import latencies
from course_utils.service.server import local_service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="requests of each kind per phase")
    args = parser.parse_args()
    with local_service() as svc:
        client = OpenAI(base_url=svc.base_url, api_key=svc.api_key, max_retries=0)
        calls = {"GET /v1/models": lambda: client.models.list(),
                 "chat (8 tokens)": lambda: client.chat.completions.create(
                     model="gpt-4o-mini-2024-07-18", temperature=0, max_tokens=8,
                     messages=[{"role": "user", "content": "what color is the fox ?"}])}
        calls["chat (8 tokens)"]()  # load the model
        idle = {name: latencies(call, args.requests) for name, call in calls.items()}
        train, _ = style_pairs()
        path = write_jsonl([chat_example(q, a) for q, a in train], Path(tempfile.mkdtemp()) / "train.jsonl")
        with open(path, "rb") as fh:
            f = client.files.create(file=fh, purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=f.id,
                                             hyperparameters={"n_epochs": 50, "batch_size": 4})
        while not any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(job.id, limit=3).data):
            time.sleep(0.05)
        busy = {name: latencies(call, args.requests) for name, call in calls.items()}
        status = client.fine_tuning.jobs.retrieve(job.id).status
        client.fine_tuning.jobs.cancel(job.id)
    print(f"job status during the measurement: {status}")
    print(f"{'request':<18} {'idle p50':>9} {'idle max':>9} {'train p50':>10} {'train max':>10} {'p50 ratio':>10}")
    for name in calls:
        i, b = idle[name], busy[name]
        print(f"{name:<18} {statistics.median(i):9.4f} {max(i):9.4f} {statistics.median(b):10.4f} "
              f"{max(b):10.4f} {statistics.median(b) / statistics.median(i):10.2f}")


if __name__ == "__main__":
    main()
