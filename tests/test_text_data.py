from collections import Counter

import pytest

from course_utils.text.data import (DEFAULT_INTENTS, intent_splits, load_intent_corpus,
                                    normalize_text)


def test_normalisation_ignores_case_accents_and_punctuation():
    assert normalize_text("  Café,  IS open!! ") == normalize_text("cafe is OPEN")


def test_corpus_is_deduplicated_within_and_across_categories():
    corpus = load_intent_corpus()
    keys = [normalize_text(t) for texts in corpus.values() for t in texts]
    assert len(keys) == len(set(keys))
    assert all(len(texts) >= 100 for texts in corpus.values()), {k: len(v) for k, v in corpus.items()}


def test_splits_are_balanced_and_disjoint():
    train, test = intent_splits(test_per_class=20)
    assert set(Counter(test.labels).values()) == {20}
    assert not {normalize_text(t) for t in train.texts} & {normalize_text(t) for t in test.texts}
    assert train.names == list(DEFAULT_INTENTS)


def test_subset_is_balanced_and_reproducible():
    train, _ = intent_splits()
    a, b = train.subset(3, seed=1), train.subset(3, seed=1)
    assert a.texts == b.texts and set(Counter(a.labels).values()) == {3}
    with pytest.raises(ValueError, match="fewer"):
        train.subset(10_000)


def test_unknown_category_is_named():
    with pytest.raises(FileNotFoundError, match="nonsense"):
        load_intent_corpus(("nonsense",))
