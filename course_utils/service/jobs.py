"""The engine behind the local OpenAI-compatible service: an on-disk store of files and jobs, a
worker thread that validates a training file and LoRA-fine-tunes a local causal LM on it, and the
models that answer chat completions (base, fine-tuned, or a checkpoint)."""

from __future__ import annotations

import json
import math
import queue
import random
import secrets
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from course_utils.llm.causal_lm import chat_batch
from course_utils.torch_utils import one_thread_on_cpu
from course_utils.llm.chat_data import chat_pairs, read_jsonl, validate_jsonl

TERMINAL = ("succeeded", "failed", "cancelled")


def new_id(prefix: str) -> str:
    """An OpenAI-looking id: `file-...`, `ftjob-...`, `ftevent-...`."""
    return f"{prefix}-{secrets.token_hex(12)}"


@dataclass(frozen=True)
class BaseModel:
    """A local base model the service can fine-tune: its public name, how to load it, its LR."""

    name: str
    load: Callable[[], tuple[Any, Any]]
    learning_rate: float = 5e-3
    min_steps: int = 150  # 'auto' epochs give at least this many optimizer steps


def tiny_base() -> BaseModel:
    """The course's tiny Llama (trained in seconds and cached): the `tiny` profile's base model."""
    from course_utils.llm.causal_lm import load_base

    return BaseModel("tiny-llama-world", lambda: load_base(progress=False))


def full_base() -> BaseModel:
    """A 0.5B instruct model from the hub for the `full` profile (needs internet once)."""
    from course_utils.llm.causal_lm import load_causal_lm

    return BaseModel("qwen2.5-0.5b-instruct", lambda: load_causal_lm("full"), 2e-4, 60)


class Store:
    """Files, jobs, events and checkpoints as JSON on disk, so a restart loses nothing finished."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        for sub in ("files", "jobs", "models"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()

    def _read(self, path: Path) -> Any:
        return json.loads(path.read_text()) if path.exists() else None

    def _write(self, path: Path, obj: Any) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(obj))
        tmp.replace(path)

    # files
    def add_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        meta = {"id": new_id("file"), "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed",
                "status_details": None, "expires_at": None}
        with self.lock:
            (self.root / "files" / f"{meta['id']}.bin").write_bytes(data)
            self._write(self.root / "files" / f"{meta['id']}.json", meta)
        return meta

    def file(self, file_id: str) -> dict[str, Any] | None:
        return self._read(self.root / "files" / f"{Path(file_id).name}.json")

    def file_path(self, file_id: str) -> Path:
        return self.root / "files" / f"{Path(file_id).name}.bin"

    def files(self) -> list[dict[str, Any]]:
        metas = [self._read(p) for p in (self.root / "files").glob("*.json")]
        return sorted(metas, key=lambda m: (m["created_at"], m["id"]), reverse=True)

    def delete_file(self, file_id: str) -> None:
        with self.lock:
            for p in (self.file_path(file_id), self.root / "files" / f"{Path(file_id).name}.json"):
                p.unlink(missing_ok=True)

    # jobs
    def job(self, job_id: str) -> dict[str, Any] | None:
        return self._read(self.root / "jobs" / f"{Path(job_id).name}.json")

    def save_job(self, job: dict[str, Any]) -> None:
        with self.lock:
            self._write(self.root / "jobs" / f"{job['id']}.json", job)

    def update_job(self, job_id: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            job = self.job(job_id)
            if job["status"] == "cancelled":  # a cancel wins over whatever the worker was doing
                fields.pop("status", None)
            job.update(fields)
            self.save_job(job)
            return job

    def jobs(self) -> list[dict[str, Any]]:
        jobs = [self._read(p) for p in (self.root / "jobs").glob("ftjob-*.json") if p.name.count(".") == 1]
        return sorted(jobs, key=lambda j: (j["created_at"], j["id"]), reverse=True)

    def add_event(self, job_id: str, message: str, level: str = "info", data: dict | None = None,
                  kind: str = "message") -> None:
        event = {"id": new_id("ftevent"), "object": "fine_tuning.job.event", "created_at": int(time.time()),
                 "level": level, "message": message, "data": data or {}, "type": kind}
        with self.lock, (self.root / "jobs" / f"{job_id}.events.jsonl").open("a") as fh:
            fh.write(json.dumps(event) + "\n")

    def events(self, job_id: str) -> list[dict[str, Any]]:
        path = self.root / "jobs" / f"{Path(job_id).name}.events.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(l) for l in reversed(lines)]  # newest first, as OpenAI lists them

    def add_checkpoint(self, ckpt: dict[str, Any]) -> None:
        with self.lock:
            path = self.root / "jobs" / f"{ckpt['fine_tuning_job_id']}.checkpoints.json"
            self._write(path, [ckpt] + (self._read(path) or []))

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        return self._read(self.root / "jobs" / f"{Path(job_id).name}.checkpoints.json") or []

    def adapter_dir(self, model_name: str) -> Path | None:
        """Where the adapter of an `ft:` model (or one of its checkpoints) was saved, if it exists."""
        index = self._read(self.root / "models" / "index.json") or {}
        path = index.get(model_name)
        return Path(path) if path and Path(path).exists() else None

    def register_model(self, model_name: str, path: Path) -> None:
        with self.lock:
            index = self._read(self.root / "models" / "index.json") or {}
            index[model_name] = str(path)
            self._write(self.root / "models" / "index.json", index)


def resolve_hyperparameters(requested: dict[str, Any], n_pairs: int, base: BaseModel) -> dict[str, Any]:
    """Replace 'auto' the way the local trainer needs: a small LM learns from ~150 steps, so auto
    epochs give at least `base.min_steps` steps; auto batch size is min(16, examples)."""
    batch = requested.get("batch_size", "auto")
    batch = min(16, n_pairs) if batch in (None, "auto") else int(batch)
    per_epoch = math.ceil(n_pairs / batch)
    epochs = requested.get("n_epochs", "auto")
    epochs = max(3, math.ceil(base.min_steps / per_epoch)) if epochs in (None, "auto") else int(epochs)
    lr_mult = requested.get("learning_rate_multiplier", "auto")
    lr_mult = 1.0 if lr_mult in (None, "auto") else float(lr_mult)
    return {"batch_size": batch, "learning_rate_multiplier": lr_mult, "n_epochs": epochs}


class Worker:
    """One background thread that runs queued jobs in order; `cancel` is honoured between steps."""

    def __init__(self, store: Store, base: BaseModel, org: str = "course") -> None:
        self.store, self.base, self.org = store, base, org
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.cancelled: set[str] = set()
        self.thread = threading.Thread(target=self._loop, name="finetune-worker", daemon=True)
        self.thread.start()
        for job in reversed(store.jobs()):  # resume what a previous run left unfinished
            if job["status"] not in TERMINAL:
                self.submit(job["id"])

    def submit(self, job_id: str) -> None:
        self.queue.put(job_id)

    def cancel(self, job_id: str) -> None:
        self.cancelled.add(job_id)

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        while (job_id := self.queue.get()) is not None:
            try:
                self._run(job_id)
            except Exception as exc:  # a crash fails the job, never the service
                self.store.update_job(job_id, status="failed", finished_at=int(time.time()),
                                      error={"code": "internal_error", "message": str(exc), "param": None})
                self.store.add_event(job_id, f"Job failed: {exc}", "error")

    def _fail(self, job_id: str, message: str, code: str = "invalid_training_file") -> None:
        self.store.update_job(job_id, status="failed", finished_at=int(time.time()),
                              error={"code": code, "message": message, "param": "training_file"})
        self.store.add_event(job_id, message, "error")

    def _run(self, job_id: str) -> None:
        store, job = self.store, self.store.job(job_id)
        if job_id in self.cancelled or job["status"] in TERMINAL:
            return
        store.update_job(job_id, status="validating_files")
        store.add_event(job_id, "Validating training file: " + job["training_file"])
        path = store.file_path(job["training_file"])
        if not path.exists():
            return self._fail(job_id, f"Training file {job['training_file']} was deleted.")
        report = validate_jsonl(path)
        if not report.ok:
            first = report.errors[0]
            return self._fail(job_id, f"The training file has {len(report.errors)} problem(s); first: "
                                      f"{first}. Fix them and upload the file again.")
        pairs = [p for ex in read_jsonl(path) for p in chat_pairs(ex)]
        hp = resolve_hyperparameters(job["hyperparameters"], len(pairs), self.base)
        store.update_job(job_id, status="queued", hyperparameters=hp,
                         method={"type": "supervised", "supervised": {"hyperparameters": hp}})
        store.add_event(job_id, "Files validated, moving job to queued state")
        self._train(job_id, pairs, hp)

    def _train(self, job_id: str, pairs: list[tuple[str, str]], hp: dict[str, Any]) -> None:
        from peft import LoraConfig, get_peft_model

        store, job = self.store, self.store.job(job_id)
        store.update_job(job_id, status="running")
        store.add_event(job_id, f"Fine-tuning job started on {len(pairs)} examples")
        model, tok = self.base.load()
        seed = job["seed"]
        torch.manual_seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16,
                                                     lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))
        bs, epochs = hp["batch_size"], hp["n_epochs"]
        per_epoch = math.ceil(len(pairs) / bs)
        total = per_epoch * epochs
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.base.learning_rate * hp["learning_rate_multiplier"], weight_decay=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10) * (1 - s / total))
        rng, step, tokens = random.Random(seed), 0, 0
        model.train()
        with one_thread_on_cpu(model):
            for epoch in range(1, epochs + 1):
                order = rng.sample(pairs, len(pairs))
                for b in range(per_epoch):
                    if job_id in self.cancelled:
                        return
                    batch = chat_batch(tok, order[b * bs:(b + 1) * bs], next(model.parameters()).device)
                    loss = model(**batch).loss
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    opt.step(), sched.step(), opt.zero_grad()
                    step, tokens = step + 1, tokens + int(batch["attention_mask"].sum())
                    store.add_event(job_id, f"Step {step}/{total}: training loss={loss.item():.4f}",
                                    data={"step": step, "train_loss": loss.item(), "total_steps": total,
                                          "train_mean_token_accuracy": None}, kind="metrics")
                if epoch > epochs - 3 and epoch < epochs:  # OpenAI keeps the last epochs' checkpoints
                    self._save(job_id, model, step, loss.item())
        model.eval()
        name = self._save(job_id, model, step, loss.item(), final=True)
        store.update_job(job_id, status="succeeded", fine_tuned_model=name, trained_tokens=tokens,
                         finished_at=int(time.time()))
        store.add_event(job_id, f"New fine-tuned model created: {name}")
        store.add_event(job_id, "The job has successfully completed")

    def model_name(self, job: dict[str, Any]) -> str:
        suffix = job.get("suffix") or ""
        return f"ft:{job['model']}:{self.org}:{suffix}:{job['id'].split('-', 1)[1][:8]}"

    def _save(self, job_id: str, model, step: int, loss: float, final: bool = False) -> str:
        """Save the adapter as a checkpoint model (and, at the end, as the job's `ft:` model)."""
        base_name = self.model_name(self.store.job(job_id))
        ckpt_name = f"{base_name}:ckpt-step-{step}"
        path = self.store.root / "models" / job_id / f"step-{step}"
        model.save_pretrained(path)
        self.store.register_model(ckpt_name, path)
        self.store.add_checkpoint({"id": new_id("ftckpt"), "object": "fine_tuning.job.checkpoint",
                                   "created_at": int(time.time()), "fine_tuned_model_checkpoint": ckpt_name,
                                   "fine_tuning_job_id": job_id, "step_number": step,
                                   "metrics": {"step": step, "train_loss": loss}})
        if final:
            self.store.register_model(base_name, path)
        return base_name if final else ckpt_name
