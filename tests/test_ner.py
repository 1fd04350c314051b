"""NER: label alignment on hand-made cases, seqeval decoding, checkers, data generator.

That the recipe learns (entity F1 up 0.3+) is asserted where it is taught: a claim in lesson 05,
which tests/test_grading_lessons.py executes."""

import numpy as np
import pytest

from course_utils.text import ner
from course_utils.checks import evaluate
from course_utils.text.models import load_tokenizer, minilm_path

B_PER, I_PER, B_LOC, I_LOC, B_ORG, I_ORG = (ner.LABELS.index(n) for n in
                                            ("B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"))


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(minilm_path()))


def test_alignment_with_real_tokenizer(tokenizer):
    words = ["Angela", "Merkel", "visited", "Gdansk", "."]
    tags = [B_PER, I_PER, 0, B_LOC, 0]
    enc = tokenizer(words, is_split_into_words=True)
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    assert tokens == ["[CLS]", "angela", "mer", "##kel", "visited", "gdansk", ".", "[SEP]"]
    first = ner.align_labels(enc.word_ids(), tags)
    assert first == [-100, B_PER, I_PER, -100, 0, B_LOC, 0, -100]
    every = ner.align_labels(enc.word_ids(), tags, label_all_tokens=True)
    assert every == [-100, B_PER, I_PER, I_PER, 0, B_LOC, 0, -100]


def test_b_tag_on_split_word_becomes_i_in_every_piece_mode():
    word_ids = [None, 0, 0, 0, 1, 1, None]
    tags = [B_ORG, B_LOC]
    assert ner.align_labels(word_ids, tags) == [-100, B_ORG, -100, -100, B_LOC, -100, -100]
    assert ner.align_labels(word_ids, tags, True) == [-100, B_ORG, I_ORG, I_ORG, B_LOC, I_LOC, -100]


def test_tokenize_and_align_batch(tokenizer):
    train, _ = ner.generated_ner(20, 0)
    batch = {"tokens": [e.tokens for e in train], "ner_tags": [e.tags for e in train]}
    enc = ner.tokenize_and_align(tokenizer, batch)
    for i, example in enumerate(train):
        labels = enc["labels"][i]
        assert len(labels) == len(enc["input_ids"][i])
        assert labels[0] == -100 and labels[-1] == -100
        kept = [l for l in labels if l != -100]
        assert kept == example.tags  # exactly one label per word, in order


def test_decode_predictions_drops_ignored_positions():
    labels = np.array([[-100, 1, 2, -100, 0, -100]])
    logits = np.zeros((1, 6, len(ner.LABELS)))
    for pos, tag in enumerate([0, 1, 0, 5, 0, 0]):
        logits[0, pos, tag] = 1
    true, pred = ner.decode_predictions(logits, labels)
    assert true == [["B-PER", "I-PER", "O"]] and pred == [["B-PER", "O", "O"]]
    scores = ner.entity_metrics(true, pred)
    assert scores["f1"] == 0.0 and scores["accuracy"] == pytest.approx(2 / 3)  # span must match exactly


def test_entity_metrics_known_case():
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    scores = ner.entity_metrics(true, pred)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert "PER" in ner.entity_report(true, pred)


def test_generator_is_consistent_and_test_names_are_unseen():
    train, test = ner.generated_ner(200, 50)
    for ex in train + test:
        assert len(ex.tokens) == len(ex.tags)
        for prev, tag in zip([0] + ex.tags, ex.tags):
            name = ner.LABELS[tag]
            if name.startswith("I-"):
                assert ner.LABELS[prev][2:] == name[2:]
    train_words = {w for ex in train for w, t in zip(ex.tokens, ex.tags) if t}
    test_words = {w for ex in test for w, t in zip(ex.tokens, ex.tags) if t}
    assert not (train_words & test_words)
    assert ner.generated_ner(5, 5) == ner.generated_ner(5, 5)


def test_checkers_reject_classic_mistakes():
    every = lambda w, t: ner.align_labels(w, t, True)  # noqa: E731
    first = ner.align_labels
    assert evaluate("05.1", first).passed and evaluate("05.2", every).passed
    no_special = lambda w, t: [0 if x is None else y for x, y in zip(w, first(w, t))]  # noqa: E731
    copy_b = lambda w, t: [-100 if x is None else t[x] for x in w]  # noqa: E731
    assert evaluate("05.1", every).status == "failed"
    assert evaluate("05.1", no_special).status == "failed"
    assert evaluate("05.2", first).status == "failed"
    assert evaluate("05.2", copy_b).status == "failed"
    assert "B- turned into I-" in evaluate("05.2", copy_b).hint or evaluate("05.2", copy_b).hint
