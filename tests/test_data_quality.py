"""Duplicates (exact and near), outliers, balance and a split that leaks nothing."""

import matplotlib

matplotlib.use("Agg")

from course_utils.text.quality import (dedupe, duplicate_groups, imbalance_ratio, label_balance,
                                       leak_free_split, leakage, length_outliers, quality_report,
                                       raw_intent_records)

TRICKY = ["How do I reset my password?", "how do i reset my password", "How do I reset my  passwrd?",
          "How do I change my email address?", "Résumé upload fails", "resume upload fails!!",
          "My invoice is wrong", "Where is my invoice?"]


def test_exact_and_near_duplicates_are_grouped():
    groups = duplicate_groups(TRICKY)
    assert groups[1] == 0 and groups[2] == 0  # case/punctuation, then a typo
    assert groups[5] == 4  # accents and punctuation
    assert groups[3] == 3 and groups[6] == 6 and groups[7] == 7  # similar topic is not a duplicate
    assert dedupe(TRICKY) == [0, 3, 4, 6, 7]


def test_threshold_controls_near_duplicates():
    assert dedupe(TRICKY, threshold=1.0) == [0, 2, 3, 4, 6, 7]


def test_length_outliers():
    texts = ["a few words here"] * 20 + ["ok"] + ["word " * 80]
    assert length_outliers(texts) == [20, 21]


def test_balance():
    labels = ["a"] * 6 + ["b"] * 3 + ["c"]
    assert label_balance(labels) == {"a": 0.6, "b": 0.3, "c": 0.1}
    assert imbalance_ratio(labels) == 6.0


def test_split_keeps_duplicates_together_and_stratifies():
    topic = ["account"] * 4 + ["upload"] * 2 + ["billing"] * 2  # per TRICKY sentence
    texts = [t for t in TRICKY for _ in range(3)] * 2
    labels = [topic[TRICKY.index(t)] for t in texts]
    train, val = leak_free_split(texts, labels, val_fraction=0.4, seed=1)
    assert sorted(train + val) == list(range(len(texts))) and val
    assert leakage([texts[i] for i in train], [texts[i] for i in val]) == 0
    # stratified: of each label's duplicate groups, round(40%) go to validation (account and
    # billing have two groups each, upload one)
    val_groups = {duplicate_groups(texts)[i]: labels[i] for i in val}
    assert sorted(val_groups.values()) == ["account", "billing"]
    # a naive random split of the same data leaks
    assert leakage(texts[::2], texts[1::2]) > 0


def test_report_on_the_raw_corpus():
    rows = raw_intent_records()
    texts, labels = [r[0] for r in rows], [r[1] for r in rows]
    rep = quality_report(texts, labels)
    # measured: 2787 rows, 2169 exact and 5 near duplicates, 558 kept; tech_support 75% -> 4%
    assert rep.n == 2787 and rep.exact_duplicates > 2000 and rep.near_duplicates >= 3
    assert rep.balance_before["tech_support"] > 0.7 and rep.balance_after["tech_support"] < 0.1
    assert 400 < len(rep.keep) < 700
    train, val = leak_free_split(texts, labels)
    assert leakage([texts[i] for i in train], [texts[i] for i in val]) == 0
    assert rep.plot() is not None
