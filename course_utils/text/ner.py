"""Named-entity recognition: generated sentences, word/sub-token label alignment, seqeval metrics.

Lesson 05 uses these. The tiny profile trains on sentences generated here (PER/ORG/LOC/MISC in
IOB2 tags, written for this course); the full profile loads CoNLL-2003 from the hub.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from transformers import PreTrainedTokenizerBase

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
IGNORE = -100  # the label id that PyTorch's cross-entropy (and Trainer) skips

# Entity lists written for this course. Names in TEST_* never appear in training sentences, so the
# test set measures whether the model learned from context and word pieces, not a lookup table.
PEOPLE = ["Maria Kowalczyk", "Tomasz Brennan", "Aiko Tanabe", "Olufemi Adeyemi", "Lucia Ferraro",
          "Henrik Lindqvist", "Priya Raman", "Mateo Alvarez", "Sven Haugland", "Grace Okonkwo",
          "Jonas Weber", "Ines Carvalho", "Dmitri Volkov", "Amara Diallo", "Chen Wei",
          "Rosa Jimenez", "Elif Demir", "Callum Fraser", "Nadia Haddad", "Kofi Mensah"]
ORGS = ["Northwind Analytics", "Bluefin Robotics", "the Harbour Trust", "Vantage Mills",
        "Orchid Pharmaceuticals", "Crestline Bank", "Meridian Rail", "Tallow & Finch",
        "Sunfield Cooperative", "Quarry Lane Studios", "Atlas Freight", "Juniper Labs"]
PLACES = ["Gdansk", "Porto", "Nairobi", "Osaka", "Valparaiso", "Tromso", "Leeds", "Marrakesh",
          "Brisbane", "Ljubljana", "Cork", "Kraków", "Montevideo", "Hanoi", "Tbilisi", "Halifax"]
MISC = ["Olympic", "Nobel", "Eurovision", "Paralympic", "World Cup", "Booker", "Michelin",
        "Fulbright", "Grammy", "Tour de France"]
TEST_PEOPLE = ["Beatrix Holm", "Yusuf Karaca", "Leona Marsh", "Ravi Subramanian", "Ilse Vermeer",
               "Tariq Bakr", "Hanna Sorensen", "Oscar Lund"]
TEST_ORGS = ["Greyhollow Foods", "Pinecrest Insurance", "Redwater Systems", "Lumen Textiles"]
TEST_PLACES = ["Bergen", "Cusco", "Dakar", "Riga", "Perth", "Lyon"]
TEST_MISC = ["Oscar", "Pulitzer", "Wimbledon"]

TEMPLATES = [
    "{PER} joined {ORG} in {LOC} last spring .",
    "{ORG} opened a new office in {LOC} on Monday .",
    "{PER} won the {MISC} prize after years of work .",
    "Fans in {LOC} cheered as {PER} arrived .",
    "A spokesperson for {ORG} said {PER} would resign .",
    "The {MISC} ceremony will be held in {LOC} this year .",
    "{PER} and {PER} met at the {MISC} final .",
    "Shares of {ORG} rose sharply on Tuesday .",
    "{PER} grew up near {LOC} before moving abroad .",
    "{ORG} hired {PER} as chief engineer .",
    "Officials in {LOC} thanked {ORG} for the donation .",
    "She watched the {MISC} coverage with friends .",
    "Nobody expected the weather to change so quickly .",
    "The meeting ended late and everyone went home .",
]


@dataclass
class NerExample:
    """One sentence as words with one IOB2 tag id per word (the CoNLL-2003 layout)."""

    tokens: list[str]
    tags: list[int]


def make_sentence(template: str, rng: random.Random, people: list[str], orgs: list[str],
                  places: list[str], misc: list[str]) -> NerExample:
    """Fill one template's slots with entities and tag every word in IOB2."""
    pools = {"PER": people, "ORG": orgs, "LOC": places, "MISC": misc}
    tokens: list[str] = []
    tags: list[int] = []
    for word in template.split():
        if word.startswith("{") and word.endswith("}"):
            kind = word[1:-1]
            entity = rng.choice(pools[kind]).split()
            tokens += entity
            tags += [LABELS.index(f"B-{kind}")] + [LABELS.index(f"I-{kind}")] * (len(entity) - 1)
        else:
            tokens.append(word)
            tags.append(0)
    return NerExample(tokens, tags)


def generated_ner(n_train: int = 300, n_test: int = 100, seed: int = 0) -> tuple[list[NerExample], list[NerExample]]:
    """Train and test sentences; test sentences use entity names never seen in training."""
    rng = random.Random(seed)
    train = [make_sentence(rng.choice(TEMPLATES), rng, PEOPLE, ORGS, PLACES, MISC) for _ in range(n_train)]
    test = [make_sentence(rng.choice(TEMPLATES), rng, TEST_PEOPLE, TEST_ORGS, TEST_PLACES, TEST_MISC)
            for _ in range(n_test)]
    return train, test


def align_labels(word_ids: list[int | None], word_labels: list[int],
                 label_all_tokens: bool = False) -> list[int]:
    """One label per sub-token: special tokens get -100; the first piece of a word keeps the
    word's label; later pieces get -100, or (label_all_tokens) the word's label with B- turned I-."""
    aligned: list[int] = []
    previous: int | None = None
    for word in word_ids:
        if word is None:
            aligned.append(IGNORE)
        elif word != previous:
            aligned.append(word_labels[word])
        elif label_all_tokens:
            name = LABELS[word_labels[word]]
            aligned.append(LABELS.index("I-" + name[2:]) if name.startswith("B-") else word_labels[word])
        else:
            aligned.append(IGNORE)
        previous = word
    return aligned


def tokenize_and_align(tokenizer: PreTrainedTokenizerBase, examples: dict[str, list],
                       label_all_tokens: bool = False, max_length: int = 128,
                       align: Callable[[list, list], list] | None = None) -> dict[str, list]:
    """`Dataset.map(batched=True)` function: tokenize pre-split words and align their tags;
    `align(word_ids, word_labels)` replaces the course's aligner (lesson 05 passes the learner's)."""
    enc = tokenizer(examples["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
    if align is None:
        def align(word_ids: list, tags: list) -> list:
            return align_labels(word_ids, tags, label_all_tokens)
    enc["labels"] = [list(align(enc.word_ids(i), list(tags)))
                     for i, tags in enumerate(examples["ner_tags"])]
    return enc


def to_dataset(examples: list[NerExample]):
    """A `datasets.Dataset` with `tokens` and `ner_tags` columns, as CoNLL-2003 has."""
    from datasets import Dataset

    return Dataset.from_dict({"tokens": [e.tokens for e in examples], "ner_tags": [e.tags for e in examples]})


def conll2003(label_names: list[str] | None = None):
    """CoNLL-2003 from a parquet copy current `datasets` loads (full profile), and its tag names."""
    from course_utils.hub import load_dataset

    raw = load_dataset("lhoestq/conll2003")
    feature = raw["train"].features["ner_tags"]
    names = getattr(getattr(feature, "feature", None), "names", None) or label_names or LABELS
    return raw, list(names)


def decode_predictions(predictions: np.ndarray, labels: np.ndarray,
                       names: list[str] = LABELS) -> tuple[list[list[str]], list[list[str]]]:
    """Turn logits/ids and aligned labels into tag strings, dropping every -100 position, so each
    list lines up with the words of a sentence as seqeval expects."""
    if predictions.ndim == 3:
        predictions = predictions.argmax(-1)
    true_tags, pred_tags = [], []
    for pred_row, label_row in zip(predictions, labels):
        keep = [(p, l) for p, l in zip(pred_row, label_row) if l != IGNORE]
        true_tags.append([names[l] for _, l in keep])
        pred_tags.append([names[p] for p, _ in keep])
    return true_tags, pred_tags


def entity_metrics(true_tags: list[list[str]], pred_tags: list[list[str]]) -> dict[str, float]:
    """Entity-level precision/recall/F1 (an entity counts only if type and span both match)."""
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

    return {"precision": float(precision_score(true_tags, pred_tags, zero_division=0)),
            "recall": float(recall_score(true_tags, pred_tags, zero_division=0)),
            "f1": float(f1_score(true_tags, pred_tags, zero_division=0)),
            "accuracy": float(accuracy_score(true_tags, pred_tags))}


def make_compute_metrics(names: list[str] = LABELS):
    """A Trainer `compute_metrics` that reports seqeval's entity-level scores."""

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        logits, labels = eval_pred
        return entity_metrics(*decode_predictions(np.asarray(logits), np.asarray(labels), names))

    return compute_metrics


def entity_report(true_tags: list[list[str]], pred_tags: list[list[str]]) -> str:
    """seqeval's per-entity-type precision/recall/F1 table, to see which types lag."""
    from seqeval.metrics import classification_report

    return classification_report(true_tags, pred_tags, digits=3, zero_division=0)


def tag_sentence(model: Any, tokenizer: PreTrainedTokenizerBase, words: list[str],
                 names: list[str] = LABELS) -> list[tuple[str, str]]:
    """(word, predicted tag) pairs for one pre-split sentence, reading the first piece of each word."""
    import torch

    enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        ids = model(**enc.to(next(model.parameters()).device)).logits[0].argmax(-1).tolist()
    result, seen = [], set()
    for position, word in enumerate(enc.word_ids(0)):
        if word is not None and word not in seen:
            seen.add(word)
            result.append((words[word], names[ids[position]]))
    return result
