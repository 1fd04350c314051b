"""Real text data that works offline: intent-labelled utterances from the chatterbot corpus."""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

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

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, per_class: int, seed: int = 0) -> "TextSplit":
        """A class-balanced sample with `per_class` examples of each label (for learning curves)."""
        rng = random.Random(seed)
        picked: list[int] = []
        for label in range(len(self.names)):
            idx = [i for i, y in enumerate(self.labels) if y == label]
            if len(idx) < per_class:
                raise ValueError(f"label {self.names[label]!r} has {len(idx)} examples, "
                                 f"fewer than the {per_class} asked for")
            picked += rng.sample(idx, per_class)
        rng.shuffle(picked)
        return TextSplit([self.texts[i] for i in picked], [self.labels[i] for i in picked], self.names)


def _corpus_dir() -> Path:
    import chatterbot_corpus

    return Path(chatterbot_corpus.__file__).resolve().parent / "data" / "english"


def load_intent_corpus(intents: tuple[str, ...] = DEFAULT_INTENTS) -> dict[str, list[str]]:
    """Every utterance per category, deduplicated on normalised text within and across categories.

    The corpus repeats many lines (tech_support holds 10 distinct ones 1,050 times), and the same
    line can sit in two categories; such a line is dropped, since its label is ambiguous.
    """
    import yaml

    owners: dict[str, set[str]] = {}
    first_seen: dict[str, str] = {}
    for name in intents:
        path = _corpus_dir() / f"{name}.yml"
        if not path.exists():
            raise FileNotFoundError(f"no category {name!r} in the chatterbot corpus ({path})")
        for conversation in yaml.safe_load(path.read_text(encoding="utf-8"))["conversations"]:
            for utterance in conversation:
                if not isinstance(utterance, str):
                    continue
                key = normalize_text(utterance)
                if len(key.split()) < 2:
                    continue
                owners.setdefault(key, set()).add(name)
                first_seen.setdefault(key, utterance.strip())
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
    train, test = TextSplit([], [], list(intents)), TextSplit([], [], list(intents))
    for label, name in enumerate(intents):
        texts = corpus[name][:]
        rng.shuffle(texts)
        if len(texts) <= test_per_class:
            raise ValueError(f"category {name!r} has only {len(texts)} distinct utterances")
        for split, chunk in ((test, texts[:test_per_class]), (train, texts[test_per_class:])):
            split.texts += chunk
            split.labels += [label] * len(chunk)
    return train, test


def imdb_splits(train_per_class: int = 2500, test_per_class: int = 500,
                seed: int = 0) -> tuple[TextSplit, TextSplit]:
    """IMDB movie reviews from the hub (full profile): balanced samples of the train/test splits
    (up to the sizes asked for; the rehearsal's stand-in holds fewer)."""
    from course_utils.hub import load_dataset

    data = load_dataset("stanfordnlp/imdb")
    splits = []
    for name, per_class in (("train", train_per_class), ("test", test_per_class)):
        part = data[name].shuffle(seed=seed)
        texts, labels = [], []
        for label in (0, 1):
            chosen = part.filter(lambda row, lab=label: row["label"] == lab)
            chosen = chosen.select(range(min(per_class, len(chosen))))
            texts += chosen["text"]
            labels += [label] * len(chosen)
        splits.append(TextSplit(texts, labels, ["negative", "positive"]))
    return splits[0], splits[1]


def classification_data(profile: str) -> tuple[TextSplit, TextSplit, str]:
    """The text-classification task of a profile: (train pool, test set, description)."""
    if profile == "tiny":
        train, test = intent_splits(test_per_class=20)
        return train, test, ("chatterbot-corpus intents (deduplicated): "
                             f"{len(train)} train / {len(test)} test, {len(train.names)} classes")
    train, test = imdb_splits()
    return train, test, f"IMDB reviews: {len(train)} train / {len(test)} test, 2 classes"
