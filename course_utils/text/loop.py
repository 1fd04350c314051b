"""A plain PyTorch loop for text classifiers: short enough to read, used where Trainer would hide
the mechanics (lesson 01's learning curves, later comparisons)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from course_utils.text.data import TextSplit


@dataclass
class LossHistory:
    """Per-step training loss, kept so a notebook can plot it."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _batches(split: TextSplit, batch_size: int, rng: random.Random | None) -> list[list[int]]:
    order = list(range(len(split)))
    if rng is not None:
        rng.shuffle(order)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _encode(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int,
            device: torch.device) -> dict[str, torch.Tensor]:
    # Dynamic padding: pad to the longest text in this batch, not to a fixed max length.
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {k: v.to(device) for k, v in enc.items()}


def train_classifier(model: nn.Module, tokenizer: PreTrainedTokenizerBase, train: TextSplit,
                     steps: int = 30, lr: float = 5e-5, batch_size: int = 16, max_length: int = 32,
                     warmup: float = 0.1, seed: int = 0, device: torch.device | str = "cpu",
                     progress: bool = True, desc: str = "training") -> LossHistory:
    """Fine-tune for a fixed number of optimiser steps, so runs on different data sizes cost the
    same and differ only in what they learned from."""
    import time

    device = torch.device(device)
    model.to(device).train()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(warmup * steps), steps)
    history = LossHistory()
    start = time.perf_counter()
    queue: list[list[int]] = []
    for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        if not queue:
            queue = _batches(train, batch_size, rng)
        idx = queue.pop(0)
        batch = _encode(tokenizer, [train.texts[i] for i in idx], max_length, device)
        labels = torch.tensor([train.labels[i] for i in idx], device=device)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        history.losses.append(loss.item())
    history.seconds = time.perf_counter() - start
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, tokenizer: PreTrainedTokenizerBase, texts: list[str],
            batch_size: int = 64, max_length: int = 32,
            device: torch.device | str = "cpu") -> torch.Tensor:
    """Logits for a list of texts, in evaluation mode and without gradients."""
    device = torch.device(device)
    model.to(device).eval()
    chunks = [model(**_encode(tokenizer, texts[i:i + batch_size], max_length, device)).logits
              for i in range(0, len(texts), batch_size)]
    return torch.cat(chunks).cpu()


def accuracy(model: nn.Module, tokenizer: PreTrainedTokenizerBase, split: TextSplit,
             device: torch.device | str = "cpu") -> float:
    """Share of a split the model labels correctly."""
    preds = predict_logits(model, tokenizer, split.texts, device=device).argmax(-1)
    return (preds == torch.tensor(split.labels)).float().mean().item()
