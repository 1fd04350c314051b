"""Checks for lesson 08 (LoRA): a LoRA layer by hand, choosing target modules, and the LoRA
configuration the lesson then trains with."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from ..checks import checker, expect, expect_callable, judge

R, ALPHA = 3, 12


def _peft_reference(d_in: int = 7, d_out: int = 5, r: int = R, alpha: int = ALPHA):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("lin", nn.Linear(d_in, d_out))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(net, LoraConfig(r=r, lora_alpha=alpha, target_modules=["lin"],
                                               lora_dropout=0.0))
    layer = model.base_model.model.lin
    nn.init.normal_(layer.lora_B["default"].weight)  # peft starts B at zero; make the update visible
    return model.eval(), layer, torch.randn(4, 7)


@checker("08.1", "a LoRA linear layer by hand", answer="lora_forward")
def probe_lora_forward(lora_forward) -> dict:
    expect_callable(lora_forward, "lora_forward")
    _, layer, x = _peft_reference()
    with torch.no_grad():
        got = lora_forward(x, layer.base_layer.weight, layer.base_layer.bias,
                           layer.lora_A["default"].weight, layer.lora_B["default"].weight, ALPHA, R)
    expect(isinstance(got, torch.Tensor), f"return a tensor, not {type(got).__name__}")
    return {"output": got.detach().float()}


@judge("08.1")
def judge_lora_forward(data: dict) -> str:
    got = data["output"]
    expect(isinstance(got, np.ndarray), "return a tensor")
    expect(tuple(got.shape) == (4, 5), f"output shape {tuple(got.shape)}, expected (4, 5)",
           "nn.Linear stores W as (out, in): the frozen path is x @ W.T; A is (r, in), B is (out, r)")
    model, layer, x = _peft_reference()
    with torch.no_grad():
        want = model(x).numpy()
        base = (x @ layer.base_layer.weight.T + layer.base_layer.bias).numpy()
        delta = (x @ layer.lora_A["default"].weight.T @ layer.lora_B["default"].weight.T).numpy()
        bias = layer.base_layer.bias.numpy()

    def close(a, b):
        return bool(np.allclose(a, b, atol=1e-4))

    expect(not close(got, base + delta), "your update is not scaled", "multiply the low-rank path by alpha / r")
    expect(not close(got, base + (R / ALPHA) * delta), "your scaling is upside down",
           "the scale is alpha / r, not r / alpha")
    expect(not close(got, base - bias + 4 * delta), "the bias of the frozen layer is missing",
           "the frozen path is x @ W.T + b")
    expect(close(got, want), f"differs from peft by up to {float(np.abs(got - want).max()):.3g}",
           "output = x @ W.T + b + (alpha / r) * (x @ A.T) @ B.T")
    return "matches peft's LoRA layer on the same weights"


def _tiny_models() -> dict[str, nn.Module]:
    from transformers import (BertConfig, BertModel, DistilBertConfig, DistilBertModel,
                              LlamaConfig, LlamaForCausalLM)

    return {
        "bert": BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32)),
        "distilbert": DistilBertModel(DistilBertConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2,
                                                       hidden_dim=32)),
        "llama": LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                              num_attention_heads=2, intermediate_size=32)),
    }


EXPECTED = {"bert": ("attention.self.query", "attention.self.value"),
            "distilbert": ("attention.q_lin", "attention.v_lin"),
            "llama": ("self_attn.q_proj", "self_attn.v_proj")}


@checker("08.2", "target modules for three architectures", answer="my_targets")
def probe_targets(targets) -> dict:
    from peft import LoraConfig, get_peft_model

    if callable(targets):  # the lesson passes the function, so an unfinished stub reads "not attempted"
        targets = targets()
    expect(isinstance(targets, dict), f"expected a dict of lists, got {type(targets).__name__}")
    expect(set(targets) == set(EXPECTED), f"give targets for exactly {sorted(EXPECTED)}")
    adapted = {}
    for arch, model in _tiny_models().items():
        names = targets[arch]
        expect(isinstance(names, (list, tuple, str)) and len(names) > 0,
               f"{arch}: give a list of module names")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=names))
        except ValueError:
            expect(False, f"{arch}: none of {names!r} is a module of this model",
                   "print [n for n, _ in model.named_modules()] and look inside the attention block")
        adapted[arch] = sorted({n.split("model.", 1)[-1] for n, m in wrapped.named_modules()
                                if hasattr(m, "lora_A")})
    return adapted


@judge("08.2")
def judge_targets(adapted: dict) -> str:
    expect(sorted(adapted) == sorted(EXPECTED), f"give targets for exactly {sorted(EXPECTED)}")
    for arch, want in EXPECTED.items():
        hit = adapted[arch]
        kinds = {n.split("layer.")[-1].split("layers.")[-1].split(".", 1)[-1] for n in hit}
        expect(not (kinds - set(want)), f"{arch}: you also adapt {sorted(kinds - set(want))}",
               "adapt only the query and value projections (as the LoRA paper did); names "
               "such as 'dense' match several layers at once")
        expect(kinds == set(want), f"{arch}: you adapt {sorted(kinds)} only",
               "both the query and the value projection, in every layer")
        expect(len(set(hit)) == 4, f"{arch}: {len(set(hit))} layers adapted, expected 2 in each of 2 blocks")
    return "query and value projections in every block of BERT, DistilBERT and Llama"


RANKS = (4, 8, 16)


@checker("08.3", "the LoRA configuration the lesson trains with", answer="style_lora_config")
def probe_style_config(style_lora_config) -> list:
    from peft import LoraConfig

    expect_callable(style_lora_config, "style_lora_config")
    out = []
    for r in RANKS:
        config = style_lora_config(r)
        expect(isinstance(config, LoraConfig), f"return a peft LoraConfig, got {type(config).__name__}")
        out.append({"task_type": str(getattr(config.task_type, "value", config.task_type)),
                    "r": config.r, "lora_alpha": config.lora_alpha,
                    "target_modules": sorted(config.target_modules or []),
                    "lora_dropout": float(config.lora_dropout)})
    return out


@judge("08.3")
def judge_style_config(configs: list) -> str:
    expect(len(configs) == len(RANKS), "your answer gave no configuration per rank")
    for r, config in zip(RANKS, configs):
        task = config["task_type"]
        expect(task == "CAUSAL_LM", f"task_type is {task!r}",
               "the model writes text: task_type='CAUSAL_LM' (SEQ_CLS is for classifiers)")
        expect(config["r"] == r, f"style_lora_config({r}) has r={config['r']}", "use the rank you are given")
        expect(config["lora_alpha"] == 2 * r, f"with r={r} you set lora_alpha={config['lora_alpha']}",
               "keep alpha / r = 2 whatever the rank, so the update keeps its size: lora_alpha = 2 * r")
        targets = set(config["target_modules"])
        expect(targets == {"q_proj", "v_proj"}, f"target_modules are {sorted(targets)}",
               "the Llama names of the query and value projections (your 08.2 answer for 'llama')")
        expect(config["lora_dropout"] == 0.0, f"lora_dropout is {config['lora_dropout']}",
               "use 0.0: the lesson compares runs, and dropout would make them differ from run to run")
    return "rank r, alpha 2r, q_proj/v_proj, causal LM: the lesson trains with it"
