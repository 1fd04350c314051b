"""Checks for lesson 10 (comparing methods): setting a model up for full fine-tuning, feature
extraction or LoRA (the lesson trains with it), the trainable fraction, and choosing a method."""

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


def _one_model(tie: bool = True):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=32,
                                        tie_word_embeddings=tie))


def _trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@checker("10.1", "set a model up for full fine-tuning, feature extraction or LoRA", answer="set_up")
def probe_set_up(set_up) -> dict:
    expect_callable(set_up, "set_up")
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half_frozen = _one_model()
        half_frozen.model.layers[0].requires_grad_(False)
        full = set_up(half_frozen, "full")
        expect(full is not None, "set_up returned None", "return the model, ready to train")
        out["full"] = [[n, bool(p.requires_grad)] for n, p in full.named_parameters()]
        out["feature_extraction"] = []
        for tie in (True, False):
            model = _one_model(tie)
            head = model.get_output_embeddings().weight
            fe = set_up(model, "feature_extraction")
            expect(fe is not None, "set_up returned None", "return the model, ready to train")
            trainable = [p for p in fe.parameters() if p.requires_grad]
            out["feature_extraction"].append({"tie": tie, "head_trains": any(p is head for p in trainable),
                                              "trainable_tensors": len(trainable)})
        lora = set_up(_one_model(), "lora")
        expect(lora is not None, "set_up returned None", "return the model, ready to train")
        config = getattr(lora, "peft_config", {}).get("default")
        out["lora"] = {"trainable": sorted(_trainable(lora)),
                       "config": None if config is None else {
                           "task_type": str(getattr(config.task_type, "value", config.task_type)),
                           "r": config.r, "lora_alpha": config.lora_alpha,
                           "lora_dropout": float(config.lora_dropout)}}
    return out


@judge("10.1")
def judge_set_up(got: dict) -> str:
    full = got["full"]
    expect(len(full) > 0 and all(flag is True for _, flag in full),
           "full fine-tuning left some weights frozen",
           "full fine-tuning trains every weight: set requires_grad on all of them, even ones "
           "someone froze before")
    expect([fe["tie"] for fe in got["feature_extraction"]] == [True, False],
           "your answer gave no feature-extraction model to check")
    for fe in got["feature_extraction"]:
        expect(fe["head_trains"] is True, "feature extraction: the output head does not train",
               "model.get_output_embeddings() is the head; its weight must train")
        expect(fe["trainable_tensors"] == 1, f"feature extraction: {fe['trainable_tensors']} tensors train",
               "freeze everything first (model.requires_grad_(False)), then unfreeze only the head")
    names = got["lora"]["trainable"]
    expect(names and all("lora_" in n for n in names),
           f"LoRA: these are not adapter weights but train: {sorted(n for n in names if 'lora_' not in n)[:3]}",
           "get_peft_model freezes the base; do not unfreeze anything afterwards")
    adapted = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names}
    expect(adapted == {"q_proj", "v_proj"}, f"LoRA adapts {sorted(adapted)}",
           "use lesson 08's adapter: rank 8, alpha 16, on q_proj and v_proj")
    config = got["lora"]["config"]
    expect(config is not None, "LoRA: the model has no peft adapter config", "wrap it with get_peft_model")
    task = config["task_type"]
    expect(task == "CAUSAL_LM", f"LoRA task_type is {task!r}", "the model writes text: task_type='CAUSAL_LM'")
    expect(config["r"] == 8 and config["lora_alpha"] == 16 and config["lora_dropout"] == 0.0,
           f"LoRA with r={config['r']}, alpha={config['lora_alpha']}, dropout={config['lora_dropout']}",
           "the same adapter as lesson 08: r=8, lora_alpha=16, lora_dropout=0.0")
    return "full, feature extraction and LoRA train what they should: the comparison uses your set-up"


@checker("10.2", "the trainable fraction of a model", answer="trainable_fraction")
def probe_fraction(trainable_fraction) -> list:
    expect_callable(trainable_fraction, "trainable_fraction")
    return [trainable_fraction(model) for model in _models()]


@judge("10.2")
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


@checker("10.3", "choose a method under a memory budget", answer="choose_method")
def probe_choose(choose_method) -> dict:
    expect_callable(choose_method, "choose_method")
    rows = [dict(r) for r in ROWS]
    chosen, unchanged = [], []
    for budget, _ in CASES:
        chosen.append(choose_method(rows, budget))
        unchanged.append(rows == ROWS)
    return {"chosen": chosen, "unchanged": unchanged,
            "reversed": choose_method([dict(r) for r in reversed(ROWS)], 500)}


@judge("10.3")
def judge_choose(got: dict) -> str:
    expect(len(got["chosen"]) == len(CASES), "your answer gave no choice per budget")
    expect(len(got["unchanged"]) == len(CASES), "your answer gave no choice per budget")
    for (budget, want), chosen, unchanged in zip(CASES, got["chosen"], got["unchanged"]):
        expect(unchanged is True, "your function changed the rows it was given",
               "do not sort, filter or edit the caller's list in place: build a new list (sorted(), a "
               "comprehension) and leave each row as it is")
        hint = ("keep the rows whose peak_mb fits the budget (<=), take the best metric, and on a "
                "tie the smaller peak; return None when nothing fits")
        expect(chosen == want, f"with {budget} MB you chose {chosen!r}", hint)
    expect(got["reversed"] == "qlora", "your answer depends on the row order",
           "break ties by peak memory, not by position")
    return "picks the best metric that fits, and the leaner of two equals"
