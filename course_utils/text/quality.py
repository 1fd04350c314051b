"""Data quality before fine-tuning: exact and near duplicates, length outliers, label balance,
a train/validation split that leaks nothing, and one report with plots."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from course_utils.text.data import corpus_utterances, normalize_text


def raw_intent_records(intents: tuple[str, ...] = ("ai", "computers", "emotion", "greetings",
                                                   "psychology", "tech_support")) -> list[tuple[str, str]]:
    """The chatterbot corpus as shipped, duplicates and all: (utterance, intent) per line, the kind of
    messy export a real project starts from."""
    return [(utterance, name) for name in intents for utterance in corpus_utterances(name)]


def shingles(text: str, n: int = 3) -> frozenset[str]:
    """Character n-grams of the normalised text: robust to typos, casing, punctuation and spacing."""
    key = normalize_text(text)
    if len(key) <= n:
        return frozenset([key])
    return frozenset(key[i:i + n] for i in range(len(key) - n + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Overlap of two shingle sets: 1.0 identical, 0.0 nothing in common."""
    return len(a & b) / len(a | b) if a or b else 1.0


def duplicate_groups(texts: list[str], threshold: float = 0.8, n: int = 3) -> list[int]:
    """For each text, the index of the first text it duplicates (itself if none): exact matches on
    normalised text, then near matches with shingle Jaccard >= `threshold`."""
    group = list(range(len(texts)))
    first_of: dict[str, int] = {}
    reps: list[tuple[int, frozenset[str]]] = []  # one representative per distinct normalised text
    for i, text in enumerate(texts):
        key = normalize_text(text)
        if key in first_of:
            group[i] = group[first_of[key]]
            continue
        first_of[key] = i
        sh = shingles(text, n)
        for j, other in reps:
            small, big = sorted((len(sh), len(other)))
            if big and small / big < threshold:
                continue  # Jaccard can never reach the threshold: sizes differ too much
            if jaccard(sh, other) >= threshold:
                group[i] = group[j]
                break
        else:
            reps.append((i, sh))
    return group


def dedupe(texts: list[str], threshold: float = 0.8) -> list[int]:
    """Indices of the texts to keep: the first of every exact or near-duplicate group."""
    return [i for i, g in enumerate(duplicate_groups(texts, threshold)) if g == i]


def length_outliers(texts: list[str], k: float = 1.5, min_words: int = 2) -> list[int]:
    """Indices of texts whose word count lies outside [Q1 - k*IQR, Q3 + k*IQR], or below `min_words`."""
    words = np.array([len(t.split()) for t in texts])
    if len(words) == 0:
        return []
    q1, q3 = np.percentile(words, [25, 75])
    low, high = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
    return [i for i, w in enumerate(words) if w < max(low, min_words) or w > high]


def label_balance(labels: list[str]) -> dict[str, float]:
    """Share of each label, largest first: a model fine-tuned on 90% 'greetings' learns to greet."""
    counts = Counter(labels)
    return {k: v / len(labels) for k, v in counts.most_common()}


def imbalance_ratio(labels: list[str]) -> float:
    """Largest class count over smallest: 1.0 is balanced; above ~3 deserves a look."""
    counts = Counter(labels).values()
    return max(counts) / min(counts)


def leak_free_split(texts: list[str], labels: list[str] | None = None, val_fraction: float = 0.2,
                    seed: int = 0, threshold: float = 0.8) -> tuple[list[int], list[int]]:
    """Train/validation indices where every duplicate group lands in one split (so validation
    never scores a sentence the model trained on), stratified by label when labels are given."""
    groups = duplicate_groups(texts, threshold)
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    by_label: dict[str, list[int]] = {}
    for g in members:
        by_label.setdefault(labels[g] if labels else "", []).append(g)
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted(by_label):
        gs = by_label[label]
        rng.shuffle(gs)
        cut = round(len(gs) * val_fraction)
        for g in gs[:cut]:
            val += members[g]
        for g in gs[cut:]:
            train += members[g]
    return sorted(train), sorted(val)


def leakage(train_texts: list[str], val_texts: list[str], threshold: float = 0.8) -> int:
    """How many validation texts duplicate (exactly or nearly) some training text."""
    groups = duplicate_groups(list(train_texts) + list(val_texts), threshold)
    train_groups = set(groups[:len(train_texts)])
    return sum(g in train_groups for g in groups[len(train_texts):])


@dataclass
class QualityReport:
    """What is wrong with a labelled text set, and what cleaning it would keep."""

    n: int
    exact_duplicates: int
    near_duplicates: int
    outliers: list[int]
    balance_before: dict[str, float]
    balance_after: dict[str, float]
    keep: list[int]
    lengths: list[int] = field(repr=False, default_factory=list)
    labels: list[str] = field(repr=False, default_factory=list)

    def summary(self) -> str:
        """Printable numbers: the counts a reviewer asks for first."""
        return (f"{self.n} texts: {self.exact_duplicates} exact duplicates, {self.near_duplicates} near "
                f"duplicates, {len(self.outliers)} length outliers -> keep {len(self.keep)} "
                f"({len(self.keep) / max(self.n, 1):.0%})")

    def plot(self):
        """Three panels: word-length histogram, label shares before/after cleaning, what was removed."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
        axes[0].hist(self.lengths, bins=30, color="tab:blue")
        axes[0].set(title="words per text", xlabel="words", ylabel="texts")
        names = list(self.balance_before)
        x = np.arange(len(names))
        axes[1].bar(x - 0.2, [self.balance_before[k] for k in names], 0.4, label="raw")
        axes[1].bar(x + 0.2, [self.balance_after.get(k, 0) for k in names], 0.4, label="cleaned")
        axes[1].set_xticks(x, names, rotation=30, ha="right")
        axes[1].set(title="label shares", ylabel="share")
        axes[1].legend()
        parts = {"exact dup": self.exact_duplicates, "near dup": self.near_duplicates,
                 "outlier": len(set(self.outliers) & set(self.keep_before_outliers)), "kept": len(self.keep)}
        axes[2].bar(list(parts), list(parts.values()), color=["tab:red", "tab:orange", "tab:purple", "tab:green"])
        axes[2].set(title="what cleaning does", ylabel="texts")
        fig.tight_layout()
        return fig

    @property
    def keep_before_outliers(self) -> list[int]:
        return sorted(set(self.keep) | set(self.outliers))


def quality_report(texts: list[str], labels: list[str], threshold: float = 0.8) -> QualityReport:
    """Measure duplicates, outliers and balance in one pass and say which rows to keep."""
    groups = duplicate_groups(texts, threshold)
    keys = [normalize_text(t) for t in texts]
    exact = sum(1 for i, g in enumerate(groups) if g != i and keys[i] == keys[g])
    near = sum(1 for i, g in enumerate(groups) if g != i) - exact
    firsts = [i for i, g in enumerate(groups) if g == i]
    outliers_local = length_outliers([texts[i] for i in firsts])
    outliers = [firsts[i] for i in outliers_local]
    keep = [i for i in firsts if i not in set(outliers)]
    return QualityReport(len(texts), exact, near, outliers, label_balance(labels),
                         label_balance([labels[i] for i in keep]) if keep else {}, keep,
                         [len(t.split()) for t in texts], list(labels))
