"""Checks for lesson 04 (text classification with Trainer): tokenizing for dynamic padding, metrics."""

from __future__ import annotations

import numpy as np

from ..checks import checker, expect, expect_callable, judge

TEXTS = ["hi there", "what is a neural network and why does it need so much data " * 6]


def _tokenizer():
    from ..text.models import load_tokenizer, minilm_path

    return load_tokenizer(str(minilm_path()))


@checker("04.1", "tokenize a batch for dynamic padding", answer="tokenize_batch")
def probe_tokenize_batch(tokenize_batch) -> dict:
    expect_callable(tokenize_batch, "tokenize_batch")
    out = tokenize_batch({"text": list(TEXTS), "label": [0, 1]}, _tokenizer(), max_length=16)
    expect(hasattr(out, "keys") and "input_ids" in out, "return what the tokenizer returns: a dict-like "
           "object with `input_ids` and `attention_mask`", "call tokenizer(batch['text'], ...)")
    ids = out["input_ids"]
    if hasattr(ids, "shape"):
        return {"tensors": True}
    return {"tensors": False, "input_ids": [[int(t) for t in row] for row in ids]}


@judge("04.1")
def judge_tokenize_batch(got: dict) -> str:
    expect(got["tensors"] is False, "you returned tensors; Dataset.map stores plain lists",
           "leave out return_tensors: the collator makes tensors per batch")
    ids = got["input_ids"]
    expect(len(ids) == 2, f"expected one encoding per text (2), got {len(ids)}",
           "pass the whole list batch['text'] to the tokenizer at once")
    expect(len(ids[1]) <= 16, f"the long text has {len(ids[1])} tokens with max_length=16",
           "turn on truncation and use the max_length argument")
    expect(len(ids[0]) < len(ids[1]), "the short text was padded to the long one's length",
           "do not pad here: the data collator pads each batch to its own longest text")
    tok = _tokenizer()
    expect(ids[0][0] == tok.cls_token_id and ids[0][-1] == tok.sep_token_id,
           "the encoding does not start with [CLS] and end with [SEP]",
           "keep the tokenizer's special tokens (add_special_tokens is on by default)")
    return "unpadded, truncated, with special tokens: ready for dynamic padding"


LOGITS = [[2.0, 0.1, 0.3], [0.2, 0.1, 3.0], [0.0, 1.5, 0.2], [4.0, 0.0, 0.0]]
LABELS = [0, 2, 2, 1]


@checker("04.2", "compute_metrics for Trainer", answer="compute_metrics")
def probe_compute_metrics(compute_metrics):
    expect_callable(compute_metrics, "compute_metrics")
    try:
        return compute_metrics((np.array(LOGITS), np.array(LABELS)))
    except (ValueError, IndexError) as exc:
        expect(False, f"your function failed on 4 examples x 3 classes: {exc}",
               "each ROW is one example: take argmax over the last axis (axis=-1)")


@judge("04.2")
def judge_compute_metrics(out) -> str:
    expect(isinstance(out, dict), f"return a dict of metric name -> number, not {type(out).__name__}",
           "Trainer logs each key with an eval_ prefix")
    expect("accuracy" in out, f"no 'accuracy' key in {sorted(map(str, out))}")
    acc = float(out["accuracy"])
    expect(abs(acc - 0.5) < 1e-9, f"accuracy on a known case should be 0.5, you returned {acc}",
           "predictions = logits.argmax(-1); accuracy = share of predictions equal to labels")
    expect("macro_f1" in out, "also report 'macro_f1'", "sklearn.metrics.f1_score(..., average='macro')")
    expect(abs(float(out["macro_f1"]) - 4 / 9) < 1e-6, f"macro_f1 on a known case should be 0.444, got "
           f"{out['macro_f1']}", "average='macro' gives each class the same weight; check the argument")
    return "Trainer can now report accuracy and macro-F1"
