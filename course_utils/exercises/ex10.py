"""Checks for lesson 10 (comparing methods): the trainable fraction, and choosing a method."""

from __future__ import annotations

import math
import warnings

import torch

from ..checks import checker, expect, expect_callable, judge


def _models():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, tie_word_embeddings=True)
    full = LlamaForCausalLM(config)
    frozen = LlamaForCausalLM(config).requires_grad_(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lora = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=2, target_modules=["q_proj"]))
    return full, frozen, lora


@checker("10.1", "the trainable fraction of a model", answer="trainable_fraction")
def probe_fraction(trainable_fraction) -> list:
    expect_callable(trainable_fraction, "trainable_fraction")
    return [trainable_fraction(model) for model in _models()]


@judge("10.1")
def judge_fraction(outputs: list) -> str:
    expect(len(outputs) == 3 and all(isinstance(v, (int, float)) for v in outputs),
           "return a number for every model")
    full, frozen, got = outputs
    expect(math.isclose(full, 1.0, abs_tol=1e-9), f"an unfrozen model gave {full}",
           "return a fraction between 0 and 1; count a shared (tied) tensor once, as model.parameters() does")
    expect(frozen == 0, f"a frozen model gave {frozen}", "count only parameters with requires_grad")
    lora = _models()[2]
    want = sum(p.numel() for p in lora.parameters() if p.requires_grad) / sum(p.numel() for p in lora.parameters())
    expect(not math.isclose(got, 100 * want, rel_tol=1e-6), "that is a percentage", "return a fraction, not percent")
    expect(math.isclose(got, want, rel_tol=1e-6), f"for a LoRA model you said {got:.4g}",
           "trainable parameters divided by all parameters, frozen ones included")
    return "right for a full, a frozen and a LoRA model"


ROWS = [{"method": "full", "peak_mb": 900.0, "metric": 0.90},
        {"method": "lora", "peak_mb": 300.0, "metric": 0.88},
        {"method": "qlora", "peak_mb": 120.0, "metric": 0.88},
        {"method": "feature_extraction", "peak_mb": 100.0, "metric": 0.60}]
CASES = [(1000, "full"), (900, "full"), (500, "qlora"), (110, "feature_extraction"), (50, None)]


@checker("10.2", "choose a method under a memory budget", answer="choose_method")
def probe_choose(choose_method) -> dict:
    expect_callable(choose_method, "choose_method")
    rows = [dict(r) for r in ROWS]
    chosen = [choose_method(rows, budget) for budget, _ in CASES]
    return {"chosen": chosen, "reversed": choose_method(list(reversed(rows)), 500), "rows_left": len(rows)}


@judge("10.2")
def judge_choose(got: dict) -> str:
    expect(len(got["chosen"]) == len(CASES), "your answer gave no choice per budget")
    for (budget, want), chosen in zip(CASES, got["chosen"]):
        hint = ("keep the rows whose peak_mb fits the budget (<=), take the best metric, and on a "
                "tie the smaller peak; return None when nothing fits")
        expect(chosen == want, f"with {budget} MB you chose {chosen!r}", hint)
    expect(got["reversed"] == "qlora", "your answer depends on the row order",
           "break ties by peak memory, not by position")
    expect(got["rows_left"] == 4, "do not modify the rows you were given")
    return "picks the best metric that fits, and the leaner of two equals"
