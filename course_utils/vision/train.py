"""Training and evaluating image classifiers for the transfer-learning lessons: a plain loop with
progress bars and history, the cached tiny source model, and the confusion matrix."""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from course_utils.torch_utils import count_parameters, one_thread_on_cpu
from course_utils.vision.data import ImageSplit
from course_utils.vision.models import keep_frozen_batchnorm_in_eval, param_groups

@dataclass
class EpochLog:
    """One epoch of one training stage."""

    stage: str
    epoch: int
    train_loss: float
    test_accuracy: float
    seconds: float
    trainable: int


@dataclass
class History:
    """Every epoch of a run, across stages, so a notebook can plot accuracy per stage."""

    epochs: list[EpochLog] = field(default_factory=list)

    def frame(self):
        """The history as a pandas DataFrame (one row per epoch)."""
        import pandas as pd

        return pd.DataFrame([asdict(e) for e in self.epochs])

    @property
    def final_accuracy(self) -> float:
        return self.epochs[-1].test_accuracy if self.epochs else float("nan")

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.mean([e.seconds for e in self.epochs])) if self.epochs else float("nan")


def _is_tensor_split(split: ImageSplit) -> bool:
    return len(split) > 0 and isinstance(split.images[0], torch.Tensor)


def batches(split: ImageSplit, batch_size: int, shuffle: bool = False, seed: int = 0,
            workers: int = 2) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) batches with the split's transform applied; small tensor datasets are
    stacked once and sliced (fast on a CPU), others go through a DataLoader, with `workers`
    processes when a pass holds more than a few batches (each pass forks them anew, which costs
    more than decoding a handful of batches in-process)."""
    if _is_tensor_split(split):
        x = torch.stack(list(split.images))
        if split.transform is not None:
            x = split.transform(x)
        y = torch.tensor(split.labels)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)) if shuffle \
            else torch.arange(len(y))
        for i in range(0, len(y), batch_size):
            idx = order[i:i + batch_size]
            yield x[idx], y[idx]
        return
    workers = workers if len(split) > 4 * batch_size else 0
    loader = torch.utils.data.DataLoader(
        split, batch_size=batch_size, shuffle=shuffle, num_workers=workers, pin_memory=True,
        generator=torch.Generator().manual_seed(seed))
    yield from ((x, torch.as_tensor(y)) for x, y in loader)


def _shift(x: torch.Tensor, max_shift: int, rng: random.Random) -> torch.Tensor:
    if not max_shift:
        return x
    dx, dy = rng.randint(-max_shift, max_shift), rng.randint(-max_shift, max_shift)
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


@torch.no_grad()
def predict(model: nn.Module, split: ImageSplit, batch_size: int = 256,
            device: torch.device | str = "cpu") -> torch.Tensor:
    """Predicted class ids for a whole split, in eval mode and without gradients."""
    model.to(device).eval()
    preds = [model(x.to(device)).argmax(-1).cpu() for x, _ in batches(split, batch_size)]
    return torch.cat(preds)


def accuracy(model: nn.Module, split: ImageSplit, device: torch.device | str = "cpu") -> float:
    """Share of a split the model labels correctly."""
    preds = predict(model, split, device=device)
    return (preds == torch.tensor(split.labels)).float().mean().item()


def fit(model: nn.Module, train: ImageSplit, test: ImageSplit, epochs: int, lr: float,
        decay: float = 1.0, batch_size: int = 32, weight_decay: float = 1e-4, seed: int = 0,
        device: torch.device | str = "cpu", history: History | None = None, stage: str = "train",
        progress: bool = True, shift: int = 0, precision: str = "fp32",
        eval_every: int = 1) -> History:
    """Train whatever is currently trainable (AdamW, parameter groups from `param_groups` so
    `decay` < 1 gives earlier blocks smaller learning rates), evaluating on `test` after every
    epoch (every `eval_every` epochs and the last, when a test pass is expensive; NaN in
    between). Appends to `history` so staged recipes produce one continuous record."""
    device = torch.device(device)
    history = history if history is not None else History()
    groups = param_groups(model, lr, decay)
    if not groups:
        raise ValueError("nothing is trainable: unfreeze the head at least")
    optimizer = torch.optim.AdamW(groups, weight_decay=weight_decay)
    trainable = count_parameters(model).trainable
    use_amp = device.type == "cuda" and precision in ("fp16", "bf16")
    amp_dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and precision == "fp16")
    model.to(device)
    with one_thread_on_cpu(model):
        _epochs(model, train, test, epochs, optimizer, scaler, use_amp, amp_dtype, batch_size,
                seed, device, history, stage, progress, shift, trainable, eval_every)
    return history


def _epochs(model, train, test, epochs, optimizer, scaler, use_amp, amp_dtype, batch_size, seed,
            device, history, stage, progress, shift, trainable, eval_every=1) -> None:
    rng = random.Random(seed)
    loss_fn = nn.CrossEntropyLoss()
    bar = tqdm(range(epochs), desc=stage, disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        keep_frozen_batchnorm_in_eval(model)
        start, losses = time.perf_counter(), []
        for x, y in batches(train, batch_size, shuffle=True, seed=seed * 1000 + epoch):
            x, y = _shift(x, shift, rng).to(device), y.to(device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.item())
        seconds = time.perf_counter() - start
        last = epoch == epochs - 1 or (epoch + 1) % max(1, eval_every) == 0
        acc = accuracy(model, test, device) if last else float("nan")
        history.epochs.append(EpochLog(stage, len(history.epochs) + 1, float(np.mean(losses)),
                                       acc, seconds, trainable))
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", acc=f"{acc:.3f}")


def epochs_for(n_examples: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """At least `epochs`, and enough epochs for `min_steps` optimiser steps: a 15-image training
    set gives one step per epoch, and nobody should be judged after 10 steps."""
    per_epoch = math.ceil(n_examples / batch_size)
    return max(epochs, math.ceil(min_steps / per_epoch))


def with_turns(split: ImageSplit, turns: int) -> ImageSplit:
    """Each image also rotated by 90, 180, 270 degrees, as separate classes ("3, upside down"):
    a harder source task whose solution must encode stroke shape and orientation, which is
    what transfers to unseen digits."""
    if turns <= 1:
        return split
    images, labels = [], []
    for image, label in zip(split.images, split.labels):
        for k in range(turns):
            images.append(torch.rot90(image, k, dims=(1, 2)))
            labels.append(label * turns + k)
    names = [f"{name}@{90 * k}" for name in split.names for k in range(turns)]
    return ImageSplit(images, labels, names, split.transform)

