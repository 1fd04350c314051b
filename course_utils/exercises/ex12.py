"""Checks for lesson 12 (data quality): near-duplicate removal and a leak-free split."""

from __future__ import annotations

from ..checks import checker, expect, expect_callable, judge
from ..text.data import normalize_text

TRICKY = ["How do I reset my password?", "how do I reset my password", "HOW DO I RESET MY PASSWORD!!",
          "How do I reset my  password ?", "How do I reset my username?", "Café opening hours",
          "cafe opening hours", "Why was I charged twice?", "Why was I charged twice this month?",
          "How do I reset my passwrd?", "Where is my parcel?"]
KEEP = ["How do I reset my password?", "How do I reset my username?", "Café opening hours",
        "Why was I charged twice?", "Why was I charged twice this month?", "Where is my parcel?"]


@checker("12.1", "near-duplicate removal", answer="dedupe_texts")
def probe_dedupe_texts(dedupe_texts):
    expect_callable(dedupe_texts, "dedupe_texts")
    return dedupe_texts(list(TRICKY))


@judge("12.1")
def judge_dedupe_texts(out) -> str:
    expect(isinstance(out, list), f"return a list of texts, not {type(out).__name__}")
    expect(all(t in TRICKY for t in out), "return the original texts, not normalised copies",
           "normalise only to compare; keep the first original text of each group")
    for dup in ("how do I reset my password", "HOW DO I RESET MY PASSWORD!!", "How do I reset my  password ?",
                "cafe opening hours"):
        expect(dup not in out, f"{dup!r} survived, but it differs only in case, punctuation, spacing or accents",
               "compare normalised text (see `normalize_text`)")
    expect("How do I reset my passwrd?" not in out, "a one-letter typo survived",
           "exact matching misses typos: compare character n-gram overlap (Jaccard) against a threshold")
    expect("How do I reset my username?" in out, "'reset my username' was removed, but it asks something else",
           "your threshold is too loose: different questions that share most words must stay")
    expect(out == KEEP, f"kept {out}", "keep the FIRST text of each group, in the original order")
    return "exact and near duplicates gone, distinct questions kept"


TEXTS = [f"{q} {'?' * (i % 3)}" for i, q in enumerate(
    ["reset my password", "Reset my password", "refund please", "where is my order", "WHERE is my order",
     "cancel subscription", "update card", "update my card", "close account", "open account"] * 3)]


@checker("12.2", "split without leakage", answer="split_without_leakage")
def probe_split(split_without_leakage) -> list:
    expect_callable(split_without_leakage, "split_without_leakage")
    train, val = split_without_leakage(list(TEXTS), 0.3, 0)
    again = split_without_leakage(list(TEXTS), 0.3, 0)
    return [[int(i) for i in train], [int(i) for i in val], [int(i) for i in again[0]]]


@judge("12.2")
def judge_split(outputs: list) -> str:
    expect(len(outputs) == 3, "return (train indices, validation indices)")
    train, val, again = outputs
    expect(sorted(train + val) == list(range(len(TEXTS))),
           "train and validation indices together must cover every text exactly once")
    seen = {normalize_text(TEXTS[i]) for i in train}
    leaks = [TEXTS[i] for i in val if normalize_text(TEXTS[i]) in seen]
    expect(not leaks, f"{len(leaks)} validation text(s) also appear in train after normalising, e.g. {leaks[0]!r}"
           if leaks else "", "split groups of duplicates, not single rows")
    expect(0.15 <= len(val) / len(TEXTS) <= 0.5, f"validation holds {len(val)} of {len(TEXTS)} texts",
           "aim for roughly `val_fraction` of the groups in validation")
    expect(again == train, "the same seed gave a different split", "seed your shuffle")
    return "no duplicate crosses the split"
