"""Text classification with the Hugging Face `Trainer`: datasets, metrics, arguments, prediction.

Lessons 04 and 07 build on these; the same functions serve the tiny profile (MiniLM on an intent
corpus, CPU) and the full profile (DistilBERT on IMDB, GPU).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from transformers import (DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerBase,
                          Trainer, TrainingArguments)

from course_utils.profile import cache_dir
from course_utils.text.data import TextSplit


def run_dir(*parts: str) -> str:
    """A fresh output folder for one Trainer run under the course cache (never the cwd)."""
    base = cache_dir("runs", *parts)
    return tempfile.mkdtemp(prefix="run-", dir=base)


def tokenize_texts(batch: dict[str, list], tokenizer: PreTrainedTokenizerBase, max_length: int = 128):
    """`Dataset.map(batched=True)` body: tokenize `batch["text"]`, truncated, NOT padded."""
    return tokenizer(batch["text"], truncation=True, max_length=max_length)


def to_dataset(tokenizer: PreTrainedTokenizerBase, split: TextSplit, max_length: int = 128,
               pad_to_max: bool = False, tokenize: Callable[..., Any] | None = None):
    """Tokenize a split into a `datasets.Dataset` WITHOUT padding, so a collator can pad each
    batch only as far as its longest text (`pad_to_max=True` is the wasteful comparison).
    `tokenize(batch, tokenizer, max_length)` replaces `tokenize_texts` (lesson 04 passes the
    learner's `tokenize_batch`)."""
    from datasets import Dataset

    ds = Dataset.from_dict({"text": split.texts, "label": split.labels})
    if pad_to_max and tokenize is not None:
        raise ValueError("pad_to_max pads with the course's tokenizing function; pass no `tokenize`")

    def encode(batch: dict[str, list]) -> dict[str, list]:
        if pad_to_max:
            return tokenizer(batch["text"], truncation=True, max_length=max_length, padding="max_length")
        return (tokenize or tokenize_texts)(batch, tokenizer, max_length)

    return ds.map(encode, batched=True, remove_columns=["text"])


@torch.no_grad()
def padding_cost(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: Any,
                 pad_to: int = 512, batch_size: int = 16, n_batches: int = 2) -> dict[str, float]:
    """Time the same forward passes on the same examples, padded per batch (dynamic) and padded
    to `pad_to` tokens, to measure what padding to the maximum costs."""
    import time

    model.eval()
    device = next(model.parameters()).device
    rows = [{k: dataset[i][k] for k in ("input_ids", "attention_mask")} for i in range(batch_size * n_batches)]
    out: dict[str, float] = {}
    for name, collate in (("dynamic", DataCollatorWithPadding(tokenizer)),
                          ("max_length", DataCollatorWithPadding(tokenizer, padding="max_length",
                                                                 max_length=pad_to))):
        batches = [collate(rows[i:i + batch_size]) for i in range(0, len(rows), batch_size)]
        model(**{k: v[:1].to(device) for k, v in batches[0].items()})  # warm-up
        start = time.perf_counter()
        for batch in batches:
            model(**{k: v.to(device) for k, v in batch.items()})
        out[f"{name}_seconds"] = time.perf_counter() - start
        out[f"{name}_tokens"] = float(sum(b["input_ids"].numel() for b in batches))
    out["speedup"] = out["max_length_seconds"] / out["dynamic_seconds"]
    return out


def classification_metrics(eval_pred: Any) -> dict[str, float]:
    """`compute_metrics` for Trainer: accuracy and macro-F1 from scikit-learn (no hub download)."""
    from sklearn.metrics import accuracy_score, f1_score

    logits, labels = eval_pred
    if isinstance(logits, tuple):
        logits = logits[0]
    preds = np.asarray(logits).argmax(-1)
    return {"accuracy": float(accuracy_score(labels, preds)),
            "macro_f1": float(f1_score(labels, preds, average="macro"))}


def training_args(output_dir: str, device: torch.device | str = "cpu", epochs: float = 2,
                  lr: float = 5e-5, batch_size: int = 16, precision: str = "fp32",
                  **overrides: Any) -> TrainingArguments:
    """TrainingArguments with the course's defaults: evaluate each epoch, no checkpoints, no
    experiment trackers, no progress bars in notebooks, mixed precision only on a GPU."""
    on_cpu = torch.device(device).type == "cpu"
    settings: dict[str, Any] = dict(
        output_dir=output_dir, num_train_epochs=epochs, learning_rate=lr,
        per_device_train_batch_size=batch_size, per_device_eval_batch_size=max(batch_size, 64),
        weight_decay=0.01, warmup_steps=0.1, lr_scheduler_type="linear",
        eval_strategy="epoch", save_strategy="no", logging_strategy="epoch",
        report_to="none", disable_tqdm=True, use_cpu=on_cpu, seed=0, data_seed=0,
        bf16=precision == "bf16", fp16=precision == "fp16", dataloader_num_workers=0,
    )
    settings.update(overrides)
    return TrainingArguments(**settings)


def make_trainer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, args: TrainingArguments,
                 train_dataset: Any, eval_dataset: Any = None, compute_metrics: Any = None,
                 collator: Any = None, callbacks: list | None = None) -> Trainer:
    """A Trainer with a dynamic-padding collator (pad per batch, not to 512)."""
    return Trainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                   processing_class=tokenizer,
                   data_collator=collator or DataCollatorWithPadding(tokenizer),
                   compute_metrics=compute_metrics or classification_metrics, callbacks=callbacks)


@torch.no_grad()
def predict_proba(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[str],
                  batch_size: int = 64, max_length: int = 128) -> np.ndarray:
    """Class probabilities for raw texts: what a saved-and-reloaded model is used for."""
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], padding=True, truncation=True,
                        max_length=max_length, return_tensors="pt").to(device)
        chunks.append(torch.softmax(model(**enc).logits.float(), -1).cpu())
    return torch.cat(chunks).numpy()


def save_model(trainer: Trainer, folder: str | Path) -> Path:
    """Save weights, config (with label names) and tokenizer together, so one folder reloads."""
    folder = Path(folder)
    trainer.save_model(str(folder))
    return folder


def loss_history(trainer: Trainer) -> tuple[list[float], list[float], list[float]]:
    """(epochs, train losses, eval losses) from `trainer.state.log_history`, for a loss plot."""
    train = {round(r["epoch"], 3): r["loss"] for r in trainer.state.log_history if "loss" in r}
    evals = {round(r["epoch"], 3): r["eval_loss"] for r in trainer.state.log_history if "eval_loss" in r}
    epochs = sorted(set(train) & set(evals))
    return epochs, [train[e] for e in epochs], [evals[e] for e in epochs]
