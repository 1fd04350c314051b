"""Checks for lesson 10 (comparing methods): the trainable fraction, and choosing a method."""

from __future__ import annotations

import math
import warnings

import torch

from ..checks import checker, expect, expect_callable


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


@checker("10.1", "the trainable fraction of a model")
def check_fraction(trainable_fraction) -> str:
    expect_callable(trainable_fraction, "trainable_fraction")
    full, frozen, lora = _models()
    expect(math.isclose(trainable_fraction(full), 1.0, abs_tol=1e-9),
           f"an unfrozen model gave {trainable_fraction(full)}",
           "return a fraction between 0 and 1; count a shared (tied) tensor once, as model.parameters() does")
    expect(trainable_fraction(frozen) == 0, f"a frozen model gave {trainable_fraction(frozen)}",
           "count only parameters with requires_grad")
    want = sum(p.numel() for p in lora.parameters() if p.requires_grad) / sum(p.numel() for p in lora.parameters())
    got = trainable_fraction(lora)
    expect(not math.isclose(got, 100 * want, rel_tol=1e-6), "that is a percentage", "return a fraction, not percent")
    expect(math.isclose(got, want, rel_tol=1e-6), f"for a LoRA model you said {got:.4g}",
           "trainable parameters divided by all parameters, frozen ones included")
    return "right for a full, a frozen and a LoRA model"


@checker("10.2", "choose a method under a memory budget")
def check_choose(choose_method) -> str:
    expect_callable(choose_method, "choose_method")
    rows = [{"method": "full", "peak_mb": 900.0, "metric": 0.90},
            {"method": "lora", "peak_mb": 300.0, "metric": 0.88},
            {"method": "qlora", "peak_mb": 120.0, "metric": 0.88},
            {"method": "feature_extraction", "peak_mb": 100.0, "metric": 0.60}]
    cases = [(1000, "full"), (900, "full"), (500, "qlora"), (110, "feature_extraction"), (50, None)]
    for budget, want in cases:
        got = choose_method(rows, budget)
        hint = ("keep the rows whose peak_mb fits the budget (<=), take the best metric, and on a "
                "tie the smaller peak; return None when nothing fits")
        expect(got == want, f"with {budget} MB you chose {got!r}", hint)
    expect(choose_method(list(reversed(rows)), 500) == "qlora", "your answer depends on the row order",
           "break ties by peak memory, not by position")
    expect(len(rows) == 4, "do not modify the rows you were given")
    return "picks the best metric that fits, and the leaner of two equals"
