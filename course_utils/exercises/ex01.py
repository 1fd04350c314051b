"""Checks for lesson 01 (why fine-tune): baselines and the gain from pretraining."""

from __future__ import annotations

from ..checks import checker, expect, expect_callable, judge
from ..text.curves import CurvePoint


@checker("01.1", "majority-class baseline", answer="majority_baseline")
def probe_majority_baseline(majority_baseline) -> list:
    expect_callable(majority_baseline, "majority_baseline")
    return [majority_baseline([0, 1, 2, 3, 4] * 4), majority_baseline([2, 2, 2, 0, 1, 2, 2, 1]),
            majority_baseline([7])]


def _number(value) -> float:
    expect(isinstance(value, (int, float)) and not isinstance(value, bool),
           f"return a number, not {type(value).__name__}")
    return float(value)


@judge("01.1")
def judge_majority_baseline(outputs: list) -> str:
    balanced, skewed, single = (_number(v) for v in outputs)
    expect(abs(balanced - 0.2) < 1e-9, f"on a balanced 5-class set you returned {balanced!r}",
           "the baseline always predicts the most frequent label: how often is it right?")
    expect(abs(skewed - 5 / 8) < 1e-9, f"on labels [2, 2, 2, 0, 1, 2, 2, 1] you returned {skewed!r}",
           "1 / number_of_classes is only right when the classes are balanced")
    expect(abs(single - 1.0) < 1e-9, f"on a single label you returned {single!r}")
    return "you know what a model has to beat"


@checker("01.2", "gain from pretraining per data size", answer="pretraining_gain")
def probe_pretraining_gain(pretraining_gain):
    expect_callable(pretraining_gain, "pretraining_gain")
    points = [CurvePoint("scratch", 8, 40, 0.30, 1.0), CurvePoint("pretrained", 2, 10, 0.55, 1.0),
              CurvePoint("scratch", 2, 10, 0.25, 1.0), CurvePoint("pretrained", 8, 40, 0.70, 1.0)]
    return pretraining_gain(points)


@judge("01.2")
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
