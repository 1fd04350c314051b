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


def _trainer_parts():
    import tempfile

    import torch
    from datasets import Dataset
    from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

    tok = _tokenizer()
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, num_labels=2))
    enc = tok(TRAINER_TEXTS, truncation=True, max_length=32)
    data = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                              "label": [1, 0, 1, 0]})
    args = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="check-04-3-"), report_to="none",
                             use_cpu=True, disable_tqdm=True)
    return model, tok, args, data.select([0, 1]), data.select([2, 3])


def _metrics(eval_pred) -> dict:
    return {"accuracy": 0.0}


TRAINER_TEXTS = ["good film", "a long and rather tedious evening at the cinema", "fine", "awful acting"]


@checker("04.3", "assemble the Trainer for fine-tuning", answer="build_trainer")
def probe_build_trainer(build_trainer) -> dict:
    expect_callable(build_trainer, "build_trainer")
    from transformers import Trainer

    model, tok, args, train, evaluation = _trainer_parts()
    try:
        trainer = build_trainer(model, tok, args, train, evaluation, _metrics)
    except TypeError as exc:
        expect("tokenizer" not in str(exc), f"Trainer rejected an argument: {exc}",
               "transformers 5 removed the `tokenizer` argument of `Trainer`: pass it as `processing_class=`")
        raise
    expect(isinstance(trainer, Trainer), f"return a transformers.Trainer, not {type(trainer).__name__}")
    batch = trainer.data_collator([train[0], train[1]])
    return {"model": trainer.model is model, "args": trainer.args is args,
            "train": trainer.train_dataset is train, "eval": trainer.eval_dataset is evaluation,
            "metrics": trainer.compute_metrics is _metrics, "processing_class": trainer.processing_class is tok,
            "batch_shape": [int(n) for n in batch["input_ids"].shape]}


@judge("04.3")
def judge_build_trainer(got: dict) -> str:
    expect(isinstance(got, dict), "your answer gave no Trainer to check")
    expect(got.get("model") is True, "the Trainer does not hold the model you were given")
    expect(got.get("args") is True, "the Trainer does not use the TrainingArguments you were given",
           "pass `args=args`; a fresh TrainingArguments() loses every setting")
    expect(got.get("train") is True, "train_dataset is not the training set you were given")
    expect(got.get("eval") is True, "eval_dataset is missing or wrong",
           "without `eval_dataset=` the Trainer cannot evaluate each epoch")
    expect(got.get("metrics") is True, "compute_metrics is missing or not the function you were given",
           "pass `compute_metrics=metrics`: otherwise evaluation reports only the loss")
    expect(got.get("processing_class") is True, "the tokenizer is not the Trainer's processing_class",
           "pass `processing_class=tokenizer`: it is saved with the model and pads batches")
    enc = _tokenizer()(TRAINER_TEXTS[:2], truncation=True, max_length=32)
    longest = max(len(ids) for ids in enc["input_ids"])
    width = tuple(got.get("batch_shape") or ())
    expect(width == (2, longest), f"a batch of two examples came out with shape {width}; the longer "
           f"one has {longest} tokens", "pad per batch: `DataCollatorWithPadding(tokenizer)` with its "
           "default padding=True, not padding='max_length'")
    return "model, arguments, data, metrics and a dynamic-padding collator: ready to train"
