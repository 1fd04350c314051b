"""Checks for lesson 09 (QLoRA): NF4 storage cost, the 4-bit loading config the lesson trains on,
and the static memory of a training run."""

from __future__ import annotations

import math

from ..checks import checker, expect, expect_callable, judge
from ..llm.peft_tools import GB

SIZES = (64 * 256, 7 * 10**9 // 16384 * 16384, 2**20)


def _numbers(outputs: list, n: int) -> list:
    expect(len(outputs) == n and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                      for v in outputs), "return a number for every case")
    return outputs


@checker("09.1", "bytes to store weights in NF4", answer="nf4_bytes")
def probe_nf4_bytes(nf4_bytes) -> list:
    expect_callable(nf4_bytes, "nf4_bytes")
    return [nf4_bytes(n, dq) for n in SIZES for dq in (False, True)]


@judge("09.1")
def judge_nf4_bytes(outputs: list) -> str:
    outputs = _numbers(outputs, 2 * len(SIZES))
    for i, n in enumerate(SIZES):
        plain, dq = outputs[2 * i], outputs[2 * i + 1]
        expect(not math.isclose(plain, n / 2, rel_tol=1e-6),
               "you counted only the 4-bit codes", "each block of 64 weights also stores its absmax")
        expect(not math.isclose(plain, n * 4.5, rel_tol=1e-3), "that is bits, not bytes",
               "divide the number of bits by 8")
        expect(math.isclose(plain, n * 4.5 / 8, rel_tol=1e-6),
               f"without double quantisation, {n:,} weights should take {n * 4.5 / 8:,.0f} bytes, "
               f"you said {plain:,.0f}", "4 bits per weight plus one fp32 absmax (32 bits) per 64 weights")
        want = n / 2 + n / 64 + 4 * n / (64 * 256)
        expect(dq < plain, "double quantisation should make the weights smaller",
               "it stores each absmax in 8 bits instead of 32")
        expect(math.isclose(dq, want, rel_tol=1e-6), f"with double quantisation you said {dq:,.0f} bytes",
               "absmaxes become 8-bit (1 byte per 64 weights) and need one fp32 constant per 256 blocks")
    return "4.5 bits per weight without, about 4.127 with double quantisation"


DTYPES = ("float32", "bfloat16", "float16")


@checker("09.2", "the 4-bit loading config QLoRA trains on", answer="qlora_config")
def probe_qlora_config(qlora_config) -> list:
    import torch
    from transformers import BitsAndBytesConfig

    expect_callable(qlora_config, "qlora_config")
    out = []
    for name in DTYPES:
        config = qlora_config(getattr(torch, name))
        expect(isinstance(config, BitsAndBytesConfig),
               f"return a transformers BitsAndBytesConfig, got {type(config).__name__}")
        out.append({"load_in_8bit": bool(config.load_in_8bit), "load_in_4bit": bool(config.load_in_4bit),
                    "quant_type": str(config.bnb_4bit_quant_type),
                    "double_quant": bool(config.bnb_4bit_use_double_quant),
                    "compute_dtype": str(config.bnb_4bit_compute_dtype)})
    return out


@judge("09.2")
def judge_qlora_config(configs: list) -> str:
    expect(len(configs) == len(DTYPES), "your answer gave no config per compute dtype")
    for name, config in zip(DTYPES, configs):
        expect(not config["load_in_8bit"], "that loads 8-bit weights", "QLoRA's base is 4-bit: load_in_4bit=True")
        expect(config["load_in_4bit"] is True, "load_in_4bit is not set")
        expect(config["quant_type"] == "nf4", f"quant type {config['quant_type']!r}",
               "QLoRA's data type is NF4 (bnb_4bit_quant_type='nf4'); 'fp4' is the default and worse")
        expect(config["double_quant"] is True, "double quantisation is off",
               "bnb_4bit_use_double_quant=True also compresses the per-block absmax constants")
        expect(config["compute_dtype"] == f"torch.{name}",
               f"for compute dtype torch.{name} your config computes in {config['compute_dtype']}",
               "pass the argument on: bnb_4bit_compute_dtype=compute_dtype")
    return "4-bit NF4, double quantisation, your compute dtype: the lesson loads its model with it"


NF4_DQ_BYTES = (4 + 8 / 64 + 32 / (64 * 256)) / 8  # per weight, as in 09.1


def reference_static_gb(parameters: float, method: str, adapter_share: float) -> float:
    """Weights + gradients + optimizer state in GiB, bf16 mixed precision with AdamW."""
    adapter = parameters * adapter_share * (4 + 4 + 8)  # fp32 weight, gradient, two moments
    if method == "full":  # bf16 weights and gradients, fp32 master weights, two fp32 moments
        return parameters * (2 + 2 + 4 + 8) / GB
    if method == "lora":
        return (parameters * 2 + adapter) / GB
    if method == "qlora":
        return (parameters * (0.97 * NF4_DQ_BYTES + 0.03 * 2) + adapter) / GB
    raise ValueError(method)


STATIC_CASES = [(params, share, method) for params in (6.74e9, 0.5e9) for share in (0.000622, 0.05, 0.3)
                for method in ("full", "lora", "qlora")]


@checker("09.3", "static training memory per method", answer="static_gb")
def probe_static_gb(static_gb) -> list:
    expect_callable(static_gb, "static_gb")
    out = []
    for params, share, method in STATIC_CASES:
        got = static_gb(params, method, share)
        expect(isinstance(got, (int, float)), f"return a number of GiB, got {type(got).__name__}")
        out.append(got)
    return out


@judge("09.3")
def judge_static_gb(outputs: list) -> str:
    outputs = _numbers(outputs, len(STATIC_CASES))
    for (params, share, method), got in zip(STATIC_CASES, outputs):
        want = reference_static_gb(params, method, share)
        expect(not math.isclose(got, want * GB / 1e9, rel_tol=1e-4),
               "you used 1 GB = 10^9 bytes", "this lesson uses GiB: divide by 1024**3")
        if method == "full":
            expect(not math.isclose(got, params * 2 / GB, rel_tol=1e-3),
                   "full fine-tuning: you counted only the weights",
                   "every parameter also has a gradient and two AdamW moments")
            expect(not math.isclose(got, params * 12 / GB, rel_tol=1e-3),
                   "full fine-tuning: 12 bytes per parameter leaves out the fp32 master weights",
                   "mixed precision keeps an fp32 copy of every weight for AdamW to update: "
                   "2 + 2 + 4 + 8 = 16 bytes per parameter")
        else:
            base = params * (2 if method == "lora" else 0.97 * NF4_DQ_BYTES + 0.06)
            expect(not math.isclose(got, (base + params * share * 12) / GB, rel_tol=1e-4),
                   f"{method}: you left out the adapter's own fp32 weights",
                   "an adapter parameter costs 4 (weight) + 4 (gradient) + 8 (AdamW) bytes")
        expect(math.isclose(got, want, rel_tol=1e-4),
               f"{method} for {params / 1e9:g}B parameters, adapters {share:.4%}: you said "
               f"{got:.3f} GiB", "weights at their storage size + gradients and AdamW moments "
               "for what trains; reread the table of bytes per parameter above the exercise")
    return "full (16 bytes/parameter), LoRA and QLoRA static memory are right"
