"""Trainer-based classification: metrics, dynamic padding, checkers.

That the tiny model really learns (accuracy up 0.3+) is asserted where it is taught: a claim in
lesson 04, which tests/test_grading_lessons.py executes."""

import numpy as np
import pytest

from course_utils.checks import evaluate
from course_utils.text.trainer import classification_metrics, to_dataset
from course_utils.text.data import intent_splits
from course_utils.text.models import load_tokenizer, minilm_path


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(minilm_path()))


def test_metrics_known_case():
    logits = np.array([[2.0, 0.1, 0.3], [0.2, 0.1, 3.0], [0.0, 1.5, 0.2], [4.0, 0.0, 0.0]])
    out = classification_metrics((logits, np.array([0, 2, 2, 1])))
    assert out["accuracy"] == pytest.approx(0.5) and out["macro_f1"] == pytest.approx(4 / 9)


def test_to_dataset_does_not_pad_and_collator_pads_to_batch_max(tokenizer):
    from transformers import DataCollatorWithPadding

    train, _ = intent_splits()
    ds = to_dataset(tokenizer, train.subset(2), max_length=32)
    lengths = [len(x) for x in ds["input_ids"]]
    assert len(set(lengths)) > 1 and max(lengths) <= 32
    batch = DataCollatorWithPadding(tokenizer)([ds[i] for i in range(len(ds))])
    assert batch["input_ids"].shape == (len(ds), max(lengths))
    padded = to_dataset(tokenizer, train.subset(2), max_length=32, pad_to_max=True)
    assert {len(x) for x in padded["input_ids"]} == {32}


def test_checkers_reject_classic_mistakes(tokenizer):
    def good(batch, tok, max_length=32):
        return tok(batch["text"], truncation=True, max_length=max_length)

    def pads(batch, tok, max_length=32):
        return tok(batch["text"], truncation=True, max_length=max_length, padding="max_length")

    def no_truncation(batch, tok, max_length=32):
        return tok(batch["text"])

    def no_special(batch, tok, max_length=32):
        return tok(batch["text"], truncation=True, max_length=max_length, add_special_tokens=False)

    assert evaluate("04.1", good).passed
    for wrong in (pads, no_truncation, no_special):
        assert evaluate("04.1", wrong).status == "failed", wrong.__name__
    assert evaluate("04.2", classification_metrics).passed
    axis0 = lambda p: {"accuracy": float((np.asarray(p[0]).argmax(0) == p[1]).mean()), "macro_f1": 0.0}  # noqa: E731
    micro = lambda p: {**classification_metrics(p), "macro_f1": classification_metrics(p)["accuracy"]}  # noqa: E731
    for wrong in (axis0, micro):
        assert evaluate("04.2", wrong).status == "failed"
