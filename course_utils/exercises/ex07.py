"""Checks for lesson 07 (evaluation and hyperparameters): confident mistakes, step counting."""

from __future__ import annotations

import numpy as np

from ..checks import checker, expect, expect_callable, judge

PROBS = [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6], [0.05, 0.95, 0.0], [0.5, 0.4, 0.1],
         [0.0, 0.2, 0.8]]
LABELS = [0, 0, 2, 2, 1, 1]


@checker("07.1", "most confident mistakes", answer="most_confident_mistakes")
def probe_confident_mistakes(most_confident_mistakes) -> list:
    expect_callable(most_confident_mistakes, "most_confident_mistakes")
    probs, labels = np.array(PROBS), np.array(LABELS)
    return [[int(i) for i in most_confident_mistakes(probs, labels, k)] for k in (2, 10)]


@judge("07.1")
def judge_confident_mistakes(outputs: list) -> str:
    expect(len(outputs) == 2, "your answer gave no result per case")
    out, out_all = outputs
    expect(0 not in out and 2 not in out, f"you returned {out}, which includes correct predictions",
           "keep only examples whose argmax differs from the label")
    expect(len(out) == 2, f"asked for k=2, got {len(out)} indices")
    expect(out != [1, 3], "your mistakes are in index order, not by confidence",
           "sort the mistakes by the probability of the PREDICTED class, highest first")
    expect(out == [3, 5], f"the two most confident mistakes are not {out}",
           "confidence = probability of the predicted (wrong) class, not of the true one")
    expect(out_all == [3, 5, 1, 4], f"with k larger than the number of mistakes you returned {out_all}",
           "return every mistake, most confident first")
    return "you can find the errors worth reading first"


@checker("07.2", "optimizer steps and warmup", answer="optimizer_steps")
def probe_steps(optimizer_steps) -> list:
    expect_callable(optimizer_steps, "optimizer_steps")
    return [tuple(optimizer_steps(1000, 16, 1, 3, 0.1)), tuple(optimizer_steps(1000, 16, 4, 2, 0.06)),
            tuple(optimizer_steps(1000, 32, 1, 1, 0.1)),  # 31.25 batches, 3.2 warmup steps
            tuple(optimizer_steps(1040, 16, 4, 1, 0.1))]  # 65 batches, 16.25 accumulation groups


@judge("07.2")
def judge_steps(outputs: list) -> str:
    expect(isinstance(outputs, list) and len(outputs) == 4, "your answer gave no result per case")
    got, got_accum, got_ceil, got_groups = (tuple(o) for o in outputs)
    expect(got[:1] != (187,), "1000 examples in batches of 16 is 63 batches (the last one partial), "
           "not 62.5 or 62", "round the number of batches per epoch UP")
    expect(got == (189, 19), f"1000 examples, batch 16, no accumulation, 3 epochs, 10% warmup: you returned {got}",
           "steps = batches per epoch x epochs; warmup = ceil(ratio x steps)")
    expect(got_accum[:1] != (126,), "with gradient accumulation the optimiser steps only every 4 batches",
           "divide batches per epoch by grad_accum")
    expect(got_accum[:1] != (30,), "63 batches with 4 accumulation steps: the last 3 batches still make an "
           "optimiser step", "round up again when dividing by grad_accum (transformers 5 steps on a partial "
           "accumulation)")
    expect(got_accum == (32, 2),
           f"1000 examples, batch 16, 4 accumulation steps, 2 epochs, 6% warmup: you returned {got_accum}")
    expect(got_ceil[:1] == (32,), f"1000 examples in batches of 32 is 32 batches (the last one partial); you "
           f"returned {got_ceil[:1]} steps", "round UP with math.ceil: round() rounds 31.25 down")
    expect(got_ceil == (32, 4), f"32 steps with 10% warmup: you returned {got_ceil}",
           "warmup = math.ceil(0.1 x 32) = ceil(3.2) = 4; round() would give 3")
    expect(got_groups[:1] == (17,), f"65 batches with 4 accumulation steps make 17 optimiser steps; you returned "
           f"{got_groups[:1]}", "ceil(65 / 4) = 17: the last, partial accumulation still steps; round() gives 16")
    return "you know how many steps your schedule has"
