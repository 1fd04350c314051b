"""Real text data that works offline: intent-labelled utterances from the chatterbot corpus."""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from course_utils.sampling import balanced_indices

DEFAULT_INTENTS = ("ai", "coding", "emotion", "psychology", "trivia")


def normalize_text(text: str) -> str:
    """Lower-case, strip accents and punctuation, squeeze spaces: the key for duplicate detection."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9 ]+", " ", text.lower())
    return re.sub(r"\s+", " ", text).strip()


@dataclass
class TextSplit:
    """Texts with integer labels and the label names, ready for any classifier."""

    texts: list[str]
    labels: list[int]
    names: list[str]
    source: str = ""  # where the texts come from, for the profile line and plots

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, per_class: int, seed: int = 0) -> "TextSplit":
        """A class-balanced sample with `per_class` examples of each label (for learning curves)."""
        picked = balanced_indices(self.labels, self.names, per_class, seed)
        return TextSplit([self.texts[i] for i in picked], [self.labels[i] for i in picked], self.names,
                         self.source)


def corpus_utterances(name: str) -> list[str]:
    """Every utterance of one chatterbot-corpus category as shipped, duplicates and all: the one
    reader of the corpus files, for the clean intent data and for lesson 12's messy export."""
    import chatterbot_corpus
    import yaml

    path = Path(chatterbot_corpus.__file__).resolve().parent / "data" / "english" / f"{name}.yml"
    if not path.exists():
        raise FileNotFoundError(f"no category {name!r} in the chatterbot corpus ({path})")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [u.strip() for conversation in doc["conversations"] for u in conversation
            if isinstance(u, str) and u.strip()]


def load_intent_corpus(intents: tuple[str, ...] = DEFAULT_INTENTS) -> dict[str, list[str]]:
    """Every utterance per category, deduplicated on normalised text within and across categories.

    The corpus repeats many lines (tech_support holds 10 distinct ones 1,050 times), and the same
    line can sit in two categories; such a line is dropped, since its label is ambiguous.
    """
    owners: dict[str, set[str]] = {}
    first_seen: dict[str, str] = {}
    for name in intents:
        for utterance in corpus_utterances(name):
            key = normalize_text(utterance)
            if len(key.split()) < 2:
                continue
            owners.setdefault(key, set()).add(name)
            first_seen.setdefault(key, utterance)
    result: dict[str, list[str]] = {name: [] for name in intents}
    for key, names in owners.items():
        if len(names) == 1:
            result[next(iter(names))].append(first_seen[key])
    return {name: sorted(texts) for name, texts in result.items()}


def intent_splits(test_per_class: int = 30, intents: tuple[str, ...] = DEFAULT_INTENTS,
                  seed: int = 0) -> tuple[TextSplit, TextSplit]:
    """A balanced held-out test set and the rest as a training pool, with no text in both."""
    corpus = load_intent_corpus(intents)
    rng = random.Random(seed)
    source = "chatterbot-corpus intents (deduplicated)"
    train, test = TextSplit([], [], list(intents), source), TextSplit([], [], list(intents), source)
    for label, name in enumerate(intents):
        texts = corpus[name][:]
        rng.shuffle(texts)
        if len(texts) <= test_per_class:
            raise ValueError(f"category {name!r} has only {len(texts)} distinct utterances")
        for split, chunk in ((test, texts[:test_per_class]), (train, texts[test_per_class:])):
            split.texts += chunk
            split.labels += [label] * len(chunk)
    return train, test


IMDB = "stanfordnlp/imdb"
IMDB_LABELS = ["negative", "positive"]


def imdb_splits(train_size: int | None = 5000, test_size: int | None = 1000,
                seed: int = 0) -> tuple[TextSplit, TextSplit]:
    """IMDB movie reviews from the hub (full profile): class-balanced samples of the train and
    test splits (half of each size per label, fewer where the rehearsal's stand-in holds fewer),
    or all 25k/25k when the sizes are None."""
    from course_utils.hub import load_dataset

    data = load_dataset(IMDB)
    splits = []
    for name, size in (("train", train_size), ("test", test_size)):
        part = data[name].shuffle(seed=seed)
        if size is None:
            splits.append(TextSplit(list(part["text"]), list(part["label"]), list(IMDB_LABELS), "IMDB reviews"))
            continue
        texts, labels = [], []
        for label in (0, 1):
            chosen = part.filter(lambda row, lab=label: row["label"] == lab)
            chosen = chosen.select(range(min(size // 2, len(chosen))))
            texts += chosen["text"]
            labels += [label] * len(chosen)
        splits.append(TextSplit(texts, labels, list(IMDB_LABELS), "IMDB reviews"))
    return splits[0], splits[1]


def classification_splits(profile: str, test_per_class: int = 30,
                          seed: int = 0) -> tuple[TextSplit, TextSplit]:
    """The text-classification task of a profile, (train pool, test set): the deduplicated
    chatterbot intents on tiny, IMDB on full."""
    if profile == "tiny":
        return intent_splits(test_per_class=test_per_class, seed=seed)
    return imdb_splits(seed=seed)


def describe(train: TextSplit, test: TextSplit) -> str:
    """One line for the profile summary: source, sizes and number of classes."""
    return f"{train.source}: {len(train)} train / {len(test)} test, {len(train.names)} classes"
