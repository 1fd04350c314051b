"""The engine behind the local OpenAI-compatible service: the local base model that stands in for
OpenAI's fine-tunable models, and the worker that validates a job's files, queues it, and
LoRA-fine-tunes the base model on it with the lessons' TRL call for the job's method
(`service.training`: supervised -> SFT, dpo -> DPO)."""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from course_utils.profile import pick_device
from course_utils.service import training
from course_utils.service.store import Store, new_id
from course_utils.service.training import MAX_BATCH, MAX_EPOCHS, JobProgress  # noqa: F401 (limits re-exported)

log = logging.getLogger(__name__)
# OpenAI's models that take supervised fine-tuning (platform.openai.com/docs/guides/fine-tuning,
# read 2026-12): each is accepted by name and trained as the local base model
OPENAI_FINETUNABLE = ("gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14", "gpt-4.1-nano-2025-04-14",
                      "gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "gpt-4-0613",
                      "gpt-3.5-turbo-0125", "gpt-3.5-turbo-1106", "gpt-3.5-turbo-0613")
INTERRUPTED = "service_interrupted"
# transformers builds a model under a process-wide meta-device context, so two threads loading at
# once can corrupt each other's model: the service loads one model at a time
LOAD_LOCK = threading.RLock()


@dataclass(frozen=True)
class LocalBase:
    """The local causal LM the service fine-tunes and serves: its name, loader, device and LR."""

    name: str
    loader: Callable[[], tuple[Any, Any]]
    device: torch.device | str = "cpu"
    learning_rate: float = 5e-3
    min_steps: int = 150  # 'auto' epochs of a supervised job give at least this many optimizer steps
    dpo_learning_rate: float | None = None  # DPO jobs' base rate; None: `learning_rate`

    def rate(self, method: str) -> float:
        """The base learning rate of a method, before the job's multiplier."""
        return (self.dpo_learning_rate or self.learning_rate) if method == "dpo" else self.learning_rate

    def load(self) -> tuple[Any, Any]:
        """A fresh copy of the model, on the service's device, and its tokenizer."""
        with LOAD_LOCK:
            model, tok = self.loader()
            return model.to(self.device).eval(), tok

    def serves(self, model: str) -> bool:
        """Whether a request for `model` (its own name or an OpenAI base name) is answered by it."""
        return model == self.name or model in OPENAI_FINETUNABLE


def tiny_base() -> LocalBase:
    """The course's tiny Llama (trained in seconds and cached): the `tiny` profile's base model."""
    from course_utils.llm.causal_lm import load_base

    return LocalBase("tiny-llama-world", lambda: load_base(progress=False))


def full_base(device: torch.device | str | None = None) -> LocalBase:
    """A 0.5B instruct model from the hub for the `full` profile (needs internet once), on the
    fastest device present unless told otherwise."""
    from course_utils.llm.causal_lm import FULL_CAUSAL_LM, load_causal_lm
    from course_utils.profile import mixed_precision, torch_dtype

    device = device if device is not None else pick_device()
    # the lessons' precision rule: bf16 on Ampere or newer, fp32 for Qwen below (fp16 overflows)
    dtype = torch_dtype(mixed_precision(device, FULL_CAUSAL_LM))
    # supervised: the usual LoRA rate; DPO: lesson 14's `full` rate
    return LocalBase("qwen2.5-0.5b-instruct", lambda: load_causal_lm("full", dtype=dtype), device,
                     learning_rate=2e-4, min_steps=60, dpo_learning_rate=5e-5)


class Stopped(Exception):
    """Raised inside a training step to end it: the job was cancelled or the service is stopping."""


class Worker:
    """A validation thread and `max_running` training threads fed by queues; a cancel or a
    shutdown is honoured between steps. Jobs a previous run left queued are queued again; one it
    left running is marked failed, saying why."""

    def __init__(self, store: Store, base: LocalBase, org: str = "course", max_running: int = 1) -> None:
        if max_running < 1:
            raise ValueError(f"max_running must be at least 1, got {max_running}")
        self.store, self.base, self.org = store, base, org
        self.validating: queue.Queue[str | None] = queue.Queue()
        self.training: queue.Queue[str | None] = queue.Queue()
        self.cancelled: set[str] = set()
        self.stopping = threading.Event()
        self._recover()
        self.threads = [threading.Thread(target=self._loop, args=(self.validating, self._validate),
                                         name="finetune-validate", daemon=True)]
        self.threads += [threading.Thread(target=self._loop, args=(self.training, self._train),
                                          name=f"finetune-train-{i}", daemon=True) for i in range(max_running)]
        for t in self.threads:
            t.start()

    def _recover(self) -> None:
        for job in reversed(self.store.jobs()):  # oldest first
            if job["status"] == "running":
                self._fail(job["id"], "The service stopped while this job was running; fine-tuning "
                                      "does not resume from a checkpoint, so create the job again.",
                           INTERRUPTED, None)
            elif job["status"] == "queued":
                self.training.put(job["id"])
            elif job["status"] == "validating_files":
                self.validating.put(job["id"])

    def submit(self, job_id: str) -> None:
        """Queue a freshly created job for file validation, then training."""
        self.validating.put(job_id)

    def cancel(self, job_id: str) -> None:
        """Stop a job's training at its next step (the store already says `cancelled`)."""
        self.cancelled.add(job_id)

    def stop(self, timeout: float = 30) -> None:
        """Stop the threads; a job still training is marked failed, saying the service stopped."""
        self.stopping.set()
        self.validating.put(None)
        for _ in self.threads[1:]:
            self.training.put(None)
        for t in self.threads:
            t.join(timeout=timeout)

    def _loop(self, jobs: queue.Queue, run: Callable[[str], None]) -> None:
        while (job_id := jobs.get()) is not None and not self.stopping.is_set():
            try:
                run(job_id)
            except Exception as exc:  # a bug fails the job, never the service; the log has the trace
                log.exception("fine-tuning job %s failed", job_id)
                self._fail(job_id, f"The job stopped on an internal error ({type(exc).__name__}) of the "
                                   "local service; its log has the details.", "internal_error", None)

    def _fail(self, job_id: str, message: str, code: str, param: str | None = "training_file") -> None:
        if self.store.update_job(job_id, status="failed", finished_at=int(time.time()),
                                 error={"code": code, "message": message, "param": param}) is not None:
            self.store.add_event(job_id, message, "error")
        self.store.discard_models(job_id)

    def _check_file(self, job_id: str, file_id: str, param: str, method: str) -> list[dict[str, Any]] | None:
        path = self.store.file_path(file_id)
        if not path.exists():
            return self._fail(job_id, f"The {param.replace('_', ' ')} {file_id} was deleted.", "invalid_file", param)
        report = training.validate_file(method, path)
        if not report.ok:
            what = "preference (DPO) file" if method == "dpo" else "file"
            return self._fail(job_id, f"The {param.replace('_', ' ')} ({what}) has {len(report.errors)} "
                                      f"problem(s); first: {report.errors[0]}. Fix them and upload the file again.",
                              f"invalid_{param}", param)
        return training.read_examples(method, path)

    def _validate(self, job_id: str) -> None:
        job = self.store.job(job_id)
        if job is None or job["status"] != "validating_files":
            return
        method = job["method"]["type"]
        self.store.add_event(job_id, "Validating training file: " + job["training_file"])
        examples = self._check_file(job_id, job["training_file"], "training_file", method)
        if examples is None or (job["validation_file"] and
                                self._check_file(job_id, job["validation_file"], "validation_file", method) is None):
            return
        requested = job["method"][method]["hyperparameters"]
        hp = training.resolve_hyperparameters(requested, training.n_examples(method, examples),
                                              self.base.min_steps, method)
        top = {k: hp[k] for k in ("batch_size", "learning_rate_multiplier", "n_epochs")}
        if self.store.update_job(job_id, status="queued", hyperparameters=top,
                                 method=training.method_object(method, hp)):
            self.store.add_event(job_id, "Files validated, moving job to queued state")
            self.training.put(job_id)

    def _train(self, job_id: str) -> None:
        store = self.store
        job = store.update_job(job_id, status="running") if job_id not in self.cancelled else None
        if job is None:  # cancelled while it waited
            return
        method = job["method"]["type"]
        hp = job["method"][method]["hyperparameters"]
        examples = training.read_examples(method, store.file_path(job["training_file"]))
        n = training.n_examples(method, examples)
        per_epoch = math.ceil(n / hp["batch_size"])
        total = per_epoch * hp["n_epochs"]
        what = "preference pairs" if method == "dpo" else "examples"
        store.add_event(job_id, f"Fine-tuning job started ({method}): {n} {what}, {total} steps, "
                                f"local base model {self.base.name} on {torch.device(self.base.device).type}")
        name, folder = self.model_name(job), store.root / "models" / job_id
        saved: dict[str, Path] = {}
        checkpoints: list[dict[str, Any]] = []

        def check() -> None:
            if job_id in self.cancelled:
                raise Stopped("cancelled")
            if self.stopping.is_set():
                raise Stopped("the service is stopping")

        def on_metrics(step: int, steps: int, data: dict[str, float]) -> None:
            store.add_event(job_id, f"Step {step}/{steps}: training loss={data['train_loss']:.4f}", kind="metrics",
                            data={**data, "total_steps": steps})

        def on_checkpoint(model, step: int, metrics: dict[str, float]) -> None:
            ckpt = f"{name}:ckpt-step-{step}"
            saved[ckpt] = folder / f"step-{step}"
            model.save_pretrained(saved[ckpt])
            saved[name] = saved[ckpt]  # the last one saved is the final model
            checkpoints.insert(0, {"id": new_id("ftckpt"), "object": "fine_tuning.job.checkpoint",
                                   "created_at": int(time.time()), "fine_tuned_model_checkpoint": ckpt,
                                   "fine_tuning_job_id": job_id, "step_number": step, "metrics": metrics})

        model, tok = self.base.load()
        tokens = training.trained_tokens(method, tok, examples, hp["n_epochs"])
        progress = JobProgress(hp["n_epochs"], check, on_metrics, on_checkpoint)
        try:
            training.train(method, model, tok, examples, hp, job["seed"],
                           self.base.rate(method) * hp["learning_rate_multiplier"], progress)
        except Stopped:
            if job_id not in self.cancelled:
                return self._fail(job_id, "The service was stopped while this job was running; create "
                                          "the job again.", INTERRUPTED, None)
            return store.discard_models(job_id)
        final = (f"New fine-tuned model created: {name}", "The job has successfully completed")
        if store.publish(job_id, saved, checkpoints, events=final, fine_tuned_model=name,
                         trained_tokens=tokens, finished_at=int(time.time())) is None:
            return store.discard_models(job_id)  # cancelled after the last step

    def model_name(self, job: dict[str, Any]) -> str:
        """OpenAI's naming: `ft:<base>:<org>:<suffix>:<8 characters of the job id>`."""
        suffix = job.get("user_provided_suffix") or ""
        return f"ft:{job['model']}:{self.org}:{suffix}:{job['id'].split('-', 1)[1][:8]}"


def new_job(request: dict[str, Any], base: LocalBase, org: str) -> dict[str, Any]:
    """The `fine_tuning.job` object for a validated creation request, in status validating_files;
    an OpenAI base name is recorded as asked, with the local model that stands in for it. The
    request's `method` (OpenAI's shape) defaults to supervised with its `hyperparameters`."""
    hp = request["hyperparameters"]
    metadata = dict(request.get("metadata") or {})
    metadata["local_base_model"] = base.name
    return {"id": new_id("ftjob"), "object": "fine_tuning.job", "created_at": int(time.time()),
            "error": None, "fine_tuned_model": None, "finished_at": None, "hyperparameters": hp,
            "model": request["model"], "organization_id": "org-" + org, "result_files": [],
            "seed": request["seed"], "status": "validating_files", "trained_tokens": None,
            "training_file": request["training_file"], "validation_file": request.get("validation_file"),
            "estimated_finish": None, "integrations": [], "metadata": metadata,
            "method": request.get("method") or training.method_object("supervised", hp),
            "user_provided_suffix": request.get("suffix")}
