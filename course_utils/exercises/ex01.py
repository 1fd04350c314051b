"""Checks for lesson 01 (why fine-tune): baselines, the gain from pretraining, freezing the embedding table."""

from __future__ import annotations

import torch

from ..checks import checker, expect, expect_callable, judge
from ..text.curves import CurvePoint


@checker("01.1", "majority-class baseline", answer="majority_baseline")
def probe_majority_baseline(majority_baseline) -> list:
    expect_callable(majority_baseline, "majority_baseline")
    return [majority_baseline([0, 1, 2, 3, 4] * 4), majority_baseline([2, 2, 2, 0, 1, 2, 2, 1]),
            majority_baseline([0, 1, 1, 2, 1]), majority_baseline([7])]


def _number(value) -> float:
    expect(isinstance(value, (int, float)) and not isinstance(value, bool),
           f"return a number, not {type(value).__name__}")
    return float(value)


@judge("01.1")
def judge_majority_baseline(outputs: list) -> str:
    expect(isinstance(outputs, list) and len(outputs) == 4, "your answer gave no result per case")
    balanced, skewed, later, single = (_number(v) for v in outputs)
    expect(abs(balanced - 0.2) < 1e-9, f"on a balanced 5-class set you returned {balanced!r}",
           "the baseline always predicts the most frequent label: how often is it right?")
    expect(abs(skewed - 5 / 8) < 1e-9, f"on labels [2, 2, 2, 0, 1, 2, 2, 1] you returned {skewed!r}",
           "1 / number_of_classes is only right when the classes are balanced")
    expect(abs(later - 3 / 5) < 1e-9, f"on labels [0, 1, 1, 2, 1] you returned {later!r}",
           "find the most frequent label over the whole list, not the first one's count")
    expect(abs(single - 1.0) < 1e-9, f"on a single label you returned {single!r}")
    return "you know what a model has to beat"


@checker("01.3", "gain from pretraining per data size", answer="pretraining_gain")
def probe_pretraining_gain(pretraining_gain):
    expect_callable(pretraining_gain, "pretraining_gain")
    points = [CurvePoint("scratch", 8, 40, 0.30, 1.0), CurvePoint("pretrained", 2, 10, 0.55, 1.0),
              CurvePoint("scratch", 2, 10, 0.25, 1.0), CurvePoint("pretrained", 8, 40, 0.70, 1.0)]
    return pretraining_gain(points)


@judge("01.3")
def judge_pretraining_gain(gain) -> str:
    expect(isinstance(gain, dict), f"return a dict keyed by examples per class, not {type(gain).__name__}")
    expect(sorted(gain) == [2, 8], f"keys should be the per-class sizes [2, 8], got {sorted(gain)}",
           "key by `point.per_class`")
    for size, want in ((2, 0.30), (8, 0.40)):
        got = _number(gain[size])
        expect(abs(got + want) > 1e-6, f"gain at {size} per class has the wrong sign",
               "gain = pretrained accuracy minus scratch accuracy")
        expect(abs(got - want) < 1e-6, f"gain at {size} per class: you returned {got!r}",
               "pair each pretrained point with the scratch point of the same size; the list is "
               "not in any particular order")
    return "pretrained minus scratch, size by size"


def _tiny_encoders() -> list[tuple[str, object]]:
    from transformers import (BertConfig, BertForSequenceClassification, DistilBertConfig,
                              DistilBertForSequenceClassification)

    torch.manual_seed(0)
    bert = BertForSequenceClassification(BertConfig(
        vocab_size=120, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=40, num_labels=3))
    distil = DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=120, dim=16, n_layers=1, n_heads=2, hidden_dim=32, max_position_embeddings=40,
        num_labels=3))
    return [("a small BERT", bert), ("a small DistilBERT", distil)]


def _flags(model) -> list[list]:
    """A model's state as data: each parameter's name and requires_grad flag."""
    return [[n, bool(p.requires_grad)] for n, p in model.named_parameters()]


def _table_name(model) -> str:
    """The parameter name of a model's token-embedding table."""
    table = model.get_input_embeddings().weight
    return next(n for n, p in model.named_parameters() if p is table)


@checker("01.2", "freeze the token-embedding table", answer="freeze_token_embeddings")
def probe_freeze_embeddings(freeze_token_embeddings) -> list:
    expect_callable(freeze_token_embeddings, "freeze_token_embeddings")
    out = []
    for _, model in _tiny_encoders():
        freeze_token_embeddings(model)
        out.append(_flags(model))
    return out


@judge("01.2")
def judge_freeze_embeddings(states: list) -> str:
    encoders = _tiny_encoders()
    expect(isinstance(states, list) and len(states) == len(encoders), "your answer gave no model state to check")
    for (label, model), state in zip(encoders, states):
        names = [n for n, _ in model.named_parameters()]
        expect([n for n, _ in state] == names, f"on {label} the parameters changed",
               "only switch requires_grad; do not add, remove or replace layers")
        flags = {n: flag for n, flag in state}
        table = _table_name(model)
        expect(flags[table] is False, f"on {label} the token-embedding table still trains",
               "set `requires_grad` on the table's weight PARAMETER (or call `.requires_grad_(False)` "
               "on the module): a plain attribute on an nn.Module changes nothing; "
               "`model.get_input_embeddings()` finds the table in any Hugging Face model")
        extra = sorted(n for n, flag in flags.items() if flag is not True and n != table)
        expect(not extra, f"on {label} you also froze {extra[:2]}",
               "only the token-embedding table: position embeddings, LayerNorm, every layer and the "
               "head keep training")
    return "only the token-embedding table is frozen, on BERT and DistilBERT"
