"""Looking past one accuracy number: reports, confusion matrices, confident mistakes, small sweeps.

Lesson 07 uses these on the lesson-04 classifier; the sweep runs the same Trainer recipe per
learning rate and records the evaluation after every epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def text_report(labels: list[int] | np.ndarray, preds: list[int] | np.ndarray, names: list[str]) -> str:
    """scikit-learn's per-class precision/recall/F1 table: which classes the model gets wrong."""
    from sklearn.metrics import classification_report

    return classification_report(labels, preds, labels=list(range(len(names))), target_names=names,
                                 digits=3, zero_division=0)


def confident_mistakes(probs: np.ndarray, labels: list[int] | np.ndarray, k: int = 5) -> list[int]:
    """Indices of the k wrong predictions the model was most sure of: label noise or blind spots."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    preds = probs.argmax(-1)
    wrong = np.flatnonzero(preds != labels)
    order = np.argsort(-probs[wrong, preds[wrong]], kind="stable")
    return [int(i) for i in wrong[order][:k]]


def optimizer_steps(n_examples: int, batch_size: int, grad_accum: int, epochs: int,
                    warmup_ratio: float) -> tuple[int, int]:
    """(total optimiser steps, warmup steps) as Trainer counts them: the numbers a schedule needs."""
    per_epoch = max(math.ceil(math.ceil(n_examples / batch_size) / grad_accum), 1)  # a partial
    # accumulation at the end of an epoch still makes one optimiser step (transformers 5)
    total = per_epoch * epochs
    return total, math.ceil(warmup_ratio * total)


@dataclass
class SweepPoint:
    """Held-out accuracy after `epoch` epochs of a run at learning rate `lr`."""

    lr: float
    epoch: int
    accuracy: float
    eval_loss: float


def lr_epoch_sweep(make_model: Any, tokenizer: Any, train_ds: Any, eval_ds: Any, lrs: list[float],
                   epochs: int, batch_size: int = 16, **overrides: Any) -> tuple[list[SweepPoint], dict]:
    """Train one model per learning rate, evaluating after every epoch; returns the points and the
    trained Trainers by learning rate (so the best one can be inspected without retraining)."""
    from tqdm.auto import tqdm

    from course_utils.text.trainer import make_trainer, run_dir, training_args

    points, trainers = [], {}
    for lr in tqdm(lrs, desc="learning rates"):
        args = training_args(run_dir("sweep"), epochs=epochs, lr=lr, batch_size=batch_size, **overrides)
        trainer = make_trainer(make_model(), tokenizer, args, train_ds, eval_ds)
        trainer.train()
        for record in trainer.state.log_history:
            if "eval_accuracy" in record:
                points.append(SweepPoint(lr, round(record["epoch"]), record["eval_accuracy"], record["eval_loss"]))
        trainers[lr] = trainer
    return points, trainers


def plot_sweep(points: list[SweepPoint], metric: str = "accuracy") -> Any:
    """Held-out metric against epochs, one line per learning rate."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for lr in sorted({p.lr for p in points}):
        mine = sorted((p for p in points if p.lr == lr), key=lambda p: p.epoch)
        ax.plot([p.epoch for p in mine], [getattr(p, metric) for p in mine], marker="o", label=f"lr={lr:g}")
    ax.set_xlabel("epochs")
    ax.set_ylabel(f"held-out {metric}")
    ax.set_xticks(sorted({p.epoch for p in points}))
    ax.legend()
    ax.set_title("learning rate x epochs")
    fig.tight_layout()
    return fig


def widget_frontend_available() -> bool:
    """True inside a Jupyter kernel with ipywidgets installed, unless COURSE_NO_WIDGETS is set."""
    import os

    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    return os.environ.get("COURSE_NO_WIDGETS", "") == ""


def sweep_explorer(points: list[SweepPoint]) -> Any:
    """A static plot of every run, always (a kernel cannot tell whether a viewer will render
    widgets, and an executed notebook must still show the result), plus a slider over learning
    rates when ipywidgets can run; returns the widget, or the figure when there is none."""
    import matplotlib.pyplot as plt

    fig = plot_sweep(points)
    plt.show()
    if not widget_frontend_available():
        return fig
    import ipywidgets as widgets

    lrs = sorted({p.lr for p in points})

    def show(lr: float, metric: str) -> None:
        plot_sweep([p for p in points if p.lr == lr], metric)
        plt.show()

    return widgets.interact(show, lr=widgets.SelectionSlider(options=lrs, description="lr"),
                            metric=widgets.ToggleButtons(options=["accuracy", "eval_loss"]))


def train_validation_split(pool: Any, train_per_class: int, validation_per_class: int,
                           seed: int = 0) -> tuple[Any, Any]:
    """Two disjoint class-balanced samples of a `TextSplit`: one to train on, one to choose
    hyperparameters with, so that the test set is touched once, at the end."""
    import random

    from course_utils.text.data import TextSplit

    rng = random.Random(seed)
    train_idx: list[int] = []
    val_idx: list[int] = []
    for label in range(len(pool.names)):
        idx = [i for i, y in enumerate(pool.labels) if y == label]
        need = train_per_class + validation_per_class
        if len(idx) < need:
            raise ValueError(f"label {pool.names[label]!r} has {len(idx)} examples, fewer than the "
                             f"{need} asked for")
        chosen = rng.sample(idx, need)
        train_idx += chosen[:train_per_class]
        val_idx += chosen[train_per_class:]
    rng.shuffle(train_idx)
    rng.shuffle(val_idx)

    def pick(indices: list[int]) -> TextSplit:
        return TextSplit([pool.texts[i] for i in indices], [pool.labels[i] for i in indices], pool.names)

    return pick(train_idx), pick(val_idx)
