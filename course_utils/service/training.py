"""How the local service trains a job, per OpenAI fine-tuning method: `supervised` runs the SFT
call of lesson 13 (`llm.sft.sft_train`) on OpenAI chat files, `dpo` the DPO call of lesson 14
(`llm.dpo.dpo_train`) on OpenAI preference files. Each method checks its file with the course's
validator of that format, resolves OpenAI's 'auto' hyperparameters, and counts trained tokens;
`JobProgress` turns the trainer's steps into the job's events, checkpoints and cancel points."""

from __future__ import annotations

import contextlib
import math
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from transformers import TrainerCallback

from course_utils.llm.chat_data import ValidationReport, chat_pairs, read_jsonl, validate_jsonl
from course_utils.llm.preference_data import from_openai, validate_preference_jsonl

METHODS = ("supervised", "dpo")
MAX_EPOCHS = 50
MAX_BATCH = 256
# 'auto' for DPO: a few epochs, not the step floor supervised jobs get (DPO moves a model away
# from its reference fast; on the tiny base 3 epochs already flip the held-out style), and beta
# 0.1, TRL's default
DPO_AUTO_EPOCHS = 3
DPO_AUTO_BETA = 0.1
# Two jobs may train at once in one process (`max_running`), which TRL does not expect: it
# resolves its top-level names lazily (two threads at once can see a half-initialised module:
# "cannot import name 'SFTConfig' from 'trl'"), and every new TrainingArguments resets
# accelerate's process-wide state, which the other job's trainer reads at every step. So the
# names are resolved once under a lock, and the state is set up once and then reused.
_TRL_SETUP = threading.Lock()
SHARED_STATE = {"accelerator_config": {"use_configured_state": True}}


def validate_file(method: str, path: str | Path) -> ValidationReport:
    """The course's validator for the method's file format: chat lines or preference lines."""
    return validate_preference_jsonl(path) if method == "dpo" else validate_jsonl(path)


def read_examples(method: str, path: str | Path) -> list[dict[str, Any]]:
    """A validated file as the trainer takes it: chat records (supervised), TRL pairs (dpo)."""
    records = read_jsonl(path)
    return [from_openai(r) for r in records] if method == "dpo" else records


def n_examples(method: str, examples: list[dict[str, Any]]) -> int:
    """What one epoch trains on: trained assistant turns (supervised) or preference pairs (dpo)."""
    return len(examples) if method == "dpo" else sum(len(chat_pairs(r)) for r in examples)


def resolve_hyperparameters(requested: dict[str, Any], n: int, min_steps: int,
                            method: str = "supervised") -> dict[str, Any]:
    """Replace 'auto' the way the local trainer needs. Supervised: a small LM learns from ~150
    steps, so auto epochs give at least `min_steps` steps (at most MAX_EPOCHS). DPO: auto epochs
    are DPO_AUTO_EPOCHS and auto beta DPO_AUTO_BETA. Auto batch is min(16, n) for both."""
    batch = requested.get("batch_size", "auto")
    batch = min(16, n) if batch == "auto" else batch
    epochs = requested.get("n_epochs", "auto")
    if epochs == "auto" and method == "dpo":
        epochs = DPO_AUTO_EPOCHS
    elif epochs == "auto":
        epochs = min(MAX_EPOCHS, max(3, math.ceil(min_steps / math.ceil(n / batch))))
    lr_mult = requested.get("learning_rate_multiplier", "auto")
    hp = {"batch_size": batch, "learning_rate_multiplier": 1.0 if lr_mult == "auto" else float(lr_mult),
          "n_epochs": epochs}
    if method == "dpo":
        beta = requested.get("beta", "auto")
        hp["beta"] = DPO_AUTO_BETA if beta == "auto" else float(beta)
    return hp


def method_object(method: str, hp: dict[str, Any]) -> dict[str, Any]:
    """The job's `method` as OpenAI reports it: the type and that method's hyperparameters."""
    return {"type": method, method: {"hyperparameters": dict(hp)}}


def trained_tokens(method: str, tok, examples: list[dict[str, Any]], epochs: int) -> int:
    """OpenAI's `trained_tokens` (what it bills): the file's tokens under the local tokenizer
    times the epochs. Supervised: each trained turn with its prompt, as the lessons batch it;
    DPO: the prompt with each of its two outputs."""
    if method == "dpo":
        n = sum(len(tok.apply_chat_template(p["prompt"] + p[k], tokenize=True, return_dict=True)["input_ids"])
                for p in examples for k in ("chosen", "rejected"))
    else:
        from course_utils.llm.causal_lm import chat_batch

        n = int(chat_batch(tok, [p for r in examples for p in chat_pairs(r)])["attention_mask"].sum())
    return n * epochs


_BARS = threading.Lock()
_quiet_jobs = [0, True]  # jobs training now, whether the bars were on before the first


@contextlib.contextmanager
def _no_dataset_bars() -> Iterator[None]:
    """No `datasets` progress bars while any job trains (they would land in a notebook's output)."""
    from datasets.utils import logging as ds_logging

    with _BARS:
        if _quiet_jobs[0] == 0:
            _quiet_jobs[1] = ds_logging.is_progress_bar_enabled()
            ds_logging.disable_progress_bar()
        _quiet_jobs[0] += 1
    try:
        yield
    finally:
        with _BARS:
            _quiet_jobs[0] -= 1
            if _quiet_jobs[0] == 0 and _quiet_jobs[1]:
                ds_logging.enable_progress_bar()


def train(method: str, model, tok, examples: list[dict[str, Any]], hp: dict[str, Any], seed: int,
          learning_rate: float, progress: TrainerCallback):
    """LoRA-train `model` with the lessons' TRL call for `method`; returns the peft model."""
    common = dict(n_epochs=hp["n_epochs"], batch_size=hp["batch_size"], learning_rate=learning_rate,
                  seed=seed, callbacks=[progress], settings=SHARED_STATE)
    with _TRL_SETUP:
        from accelerate import PartialState
        from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer  # noqa: F401 (resolved once, for every thread)

        PartialState(cpu=next(model.parameters()).device.type == "cpu")
    with _no_dataset_bars():
        if method == "dpo":
            from course_utils.llm.dpo import dpo_train

            return dpo_train(model, tok, examples, beta=hp["beta"], **common)[0]
        from course_utils.llm.sft import sft_train

        return sft_train(model, tok, examples, **common)[0]


class JobProgress(TrainerCallback):
    """After every step `check()` (raise there to stop: a cancel, a shutdown); after every logged
    step `on_metrics(step, total, data)`; at the end of each of the last three epochs (what OpenAI
    keeps) `on_checkpoint(model, step, data)`."""

    def __init__(self, n_epochs: int, check: Callable[[], None],
                 on_metrics: Callable[[int, int, dict[str, float]], None],
                 on_checkpoint: Callable[[Any, int, dict[str, float]], None]) -> None:
        self.n_epochs, self.check, self.on_metrics, self.on_checkpoint = n_epochs, check, on_metrics, on_checkpoint
        self.epochs_done = 0
        self.last: dict[str, float] = {}

    def on_step_end(self, args, state, control, **kwargs):
        self.check()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:  # a step's log, not the end-of-training summary
            self.last = {"step": state.global_step, "train_loss": float(logs["loss"])}
            if "mean_token_accuracy" in logs:
                self.last["train_mean_token_accuracy"] = float(logs["mean_token_accuracy"])
            self.on_metrics(state.global_step, state.max_steps, self.last)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.epochs_done += 1
        if self.epochs_done > self.n_epochs - 3:
            self.on_checkpoint(model, state.global_step, dict(self.last))
