"""Checks for lesson 04 (text classification with Trainer): tokenizing for dynamic padding, metrics."""

from __future__ import annotations

import numpy as np

from ..checks import checker, expect, expect_callable


def _tokenizer():
    from ..text.models import load_tokenizer, minilm_path

    return load_tokenizer(str(minilm_path()))


@checker("04.1", "tokenize a batch for dynamic padding")
def check_tokenize_batch(tokenize_batch) -> str:
    expect_callable(tokenize_batch, "tokenize_batch")
    tok = _tokenizer()
    texts = ["hi there", "what is a neural network and why does it need so much data " * 6]
    out = tokenize_batch({"text": texts, "label": [0, 1]}, tok, max_length=16)
    expect(hasattr(out, "keys") and "input_ids" in out, "return what the tokenizer returns: a dict-like "
           "object with `input_ids` and `attention_mask`", "call tokenizer(batch['text'], ...)")
    ids = out["input_ids"]
    expect(len(ids) == 2, f"expected one encoding per text (2), got {len(ids)}",
           "pass the whole list batch['text'] to the tokenizer at once")
    expect(not hasattr(ids, "shape"), "you returned tensors; Dataset.map stores plain lists",
           "leave out return_tensors: the collator makes tensors per batch")
    expect(len(ids[1]) <= 16, f"the long text has {len(ids[1])} tokens with max_length=16",
           "turn on truncation and use the max_length argument")
    expect(len(ids[0]) < len(ids[1]), "the short text was padded to the long one's length",
           "do not pad here: the data collator pads each batch to its own longest text")
    expect(ids[0][0] == tok.cls_token_id and ids[0][-1] == tok.sep_token_id,
           "the encoding does not start with [CLS] and end with [SEP]",
           "keep the tokenizer's special tokens (add_special_tokens is on by default)")
    return "unpadded, truncated, with special tokens: ready for dynamic padding"


@checker("04.2", "compute_metrics for Trainer")
def check_compute_metrics(compute_metrics) -> str:
    expect_callable(compute_metrics, "compute_metrics")
    logits = np.array([[2.0, 0.1, 0.3], [0.2, 0.1, 3.0], [0.0, 1.5, 0.2], [4.0, 0.0, 0.0]])
    labels = np.array([0, 2, 2, 1])
    try:
        out = compute_metrics((logits, labels))
    except (ValueError, IndexError) as exc:
        expect(False, f"your function failed on 4 examples x 3 classes: {exc}",
               "each ROW is one example: take argmax over the last axis (axis=-1)")
    expect(isinstance(out, dict), f"return a dict of metric name -> number, not {type(out).__name__}",
           "Trainer logs each key with an eval_ prefix")
    expect("accuracy" in out, f"no 'accuracy' key in {sorted(out)}")
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
    texts = ["good film", "a long and rather tedious evening at the cinema", "fine", "awful acting"]
    enc = tok(texts, truncation=True, max_length=32)
    data = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                              "label": [1, 0, 1, 0]})
    args = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="check-04-3-"), report_to="none",
                             use_cpu=True, disable_tqdm=True)
    return model, tok, args, data.select([0, 1]), data.select([2, 3])


def _metrics(eval_pred) -> dict:
    return {"accuracy": 0.0}


@checker("04.3", "assemble the Trainer for fine-tuning")
def check_build_trainer(build_trainer) -> str:
    expect_callable(build_trainer, "build_trainer")
    from transformers import Trainer

    model, tok, args, train, evaluation = _trainer_parts()
    try:
        trainer = build_trainer(model, tok, args, train, evaluation, _metrics)
    except TypeError as exc:
        expect("tokenizer" not in str(exc), f"Trainer rejected an argument: {exc}",
               "transformers 5 removed `Trainer(tokenizer=...)`: pass it as `processing_class=`")
        raise
    expect(isinstance(trainer, Trainer), f"return a transformers.Trainer, not {type(trainer).__name__}")
    expect(trainer.model is model, "the Trainer does not hold the model you were given")
    expect(trainer.args is args, "the Trainer does not use the TrainingArguments you were given",
           "pass `args=args`; a fresh TrainingArguments() loses every setting")
    expect(trainer.train_dataset is train, "train_dataset is not the training set you were given")
    expect(trainer.eval_dataset is evaluation, "eval_dataset is missing or wrong",
           "without `eval_dataset=` the Trainer cannot evaluate each epoch")
    expect(trainer.compute_metrics is _metrics, "compute_metrics is missing or not the function you were given",
           "pass `compute_metrics=metrics`: otherwise evaluation reports only the loss")
    expect(trainer.processing_class is tok, "the tokenizer is not the Trainer's processing_class",
           "pass `processing_class=tokenizer`: it is saved with the model and pads batches")
    batch = trainer.data_collator([train[0], train[1]])
    width = tuple(batch["input_ids"].shape)
    longest = max(len(train[0]["input_ids"]), len(train[1]["input_ids"]))
    expect(width == (2, longest), f"a batch of two examples came out with shape {width}; the longer "
           f"one has {longest} tokens", "pad per batch: `DataCollatorWithPadding(tokenizer)` with its "
           "default padding=True, not padding='max_length'")
    return "model, arguments, data, metrics and a dynamic-padding collator: ready to train"
