"""Pretrained vs from-scratch learning curves: lesson 01's measurement, also run by the tests."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from tqdm.auto import tqdm

from course_utils.text.data import TextSplit
from course_utils.text.models import freeze_word_embeddings, load_sequence_classifier
from course_utils.text.loop import accuracy, train_classifier


@dataclass
class CurvePoint:
    """Accuracy of one initialisation after training on `per_class` labelled examples per class."""

    init: str
    per_class: int
    examples: int
    accuracy: float
    seconds: float


# The one recipe per profile. tiny: MiniLM on one-line intents (short texts, a high rate moves a
# small model in few steps). full: DistilBERT on IMDB reviews, whose average is ~230 words (~300
# tokens), so 256 tokens keep most of a review, with the usual BERT fine-tuning rate and batch.
RECIPES = {
    "tiny": {"epochs": 2, "min_steps": 15, "batch_size": 8, "lr": 2e-4, "max_length": 32},
    "full": {"epochs": 2, "min_steps": 30, "batch_size": 16, "lr": 3e-5, "max_length": 256},
}


def pretrained_vs_scratch(source: str, tokenizer, train: TextSplit, test: TextSplit,
                          sizes: tuple[int, ...] = (2, 8, 24), seed: int = 0, device: str = "cpu",
                          profile: str = "tiny",
                          freeze: Callable[[Any], Any] = freeze_word_embeddings,
                          **overrides) -> list[CurvePoint]:
    """Train the same architecture from pretrained and from random weights on growing subsets,
    with an identical recipe (the profile's `RECIPES` entry: epochs, batch, learning rate, token
    length; `overrides` replace single entries) and a frozen embedding table; tiny sets get at
    least `min_steps` steps so that neither side is judged before it moved. `freeze(model)`
    freezes the embedding table of both models (lesson 01 passes the learner's version)."""
    unknown = set(overrides) - set(RECIPES["tiny"])
    if profile not in RECIPES or unknown:
        raise ValueError(f"profile {profile!r} / settings {sorted(unknown)}: choose a profile from "
                         f"{list(RECIPES)} and settings from {list(RECIPES['tiny'])}")
    r = {**RECIPES[profile], **overrides}
    epochs, min_steps, batch_size, lr = r["epochs"], r["min_steps"], r["batch_size"], r["lr"]
    points = []
    runs = [(n, init) for n in sizes for init in ("pretrained", "scratch")]
    for n, init in tqdm(runs, desc="learning curve"):
        subset = train.subset(n, seed=seed)
        model = load_sequence_classifier(source, train.names, pretrained=init == "pretrained",
                                         seed=seed)
        freeze(model)
        steps = max(min_steps, math.ceil(epochs * len(subset) / batch_size))
        history = train_classifier(model, tokenizer, subset, steps=steps, lr=lr, batch_size=batch_size,
                                   max_length=r["max_length"], seed=seed, device=device, progress=False)
        points.append(CurvePoint(init, n, len(subset),
                                 accuracy(model, tokenizer, test, device, max_length=r["max_length"]),
                                 history.seconds))
    return points


def majority_baseline(labels: list[int]) -> float:
    """Accuracy of always predicting the most frequent label: the floor any model must clear."""
    from collections import Counter

    return max(Counter(labels).values()) / len(labels)


def gains(points: list[CurvePoint]) -> dict[int, float]:
    """Pretrained minus scratch accuracy at each training-set size."""
    acc = {(p.init, p.per_class): p.accuracy for p in points}
    sizes = sorted({p.per_class for p in points})
    return {n: acc[("pretrained", n)] - acc[("scratch", n)] for n in sizes}


def plot_learning_curves(points: list[CurvePoint], baseline: float | None = None,
                         title: str = "Pretrained vs from scratch"):
    """Accuracy against labelled examples per class, one line per initialisation."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for init, style in (("pretrained", "o-"), ("scratch", "s--")):
        pts = sorted((p for p in points if p.init == init), key=lambda p: p.per_class)
        ax.plot([p.per_class for p in pts], [p.accuracy for p in pts], style, label=init)
    if baseline is not None:
        ax.axhline(baseline, color="grey", lw=1, ls=":", label="majority baseline")
    ax.set_xscale("log", base=2)
    sizes = sorted({p.per_class for p in points})
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("labelled examples per class")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig
