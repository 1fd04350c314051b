"""Checks for lesson 09 (QLoRA): NF4 storage cost, and the static memory of a training run."""

from __future__ import annotations

import math

from ..checks import checker, expect, expect_callable, judge
from ..llm.peft_tools import GB, estimate_memory

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


CASES = [(params, method) for params in (7e9, 0.5e9) for method in ("full", "lora", "qlora")]


@checker("09.2", "static training memory per method", answer="static_gb")
def probe_static_gb(static_gb) -> list:
    expect_callable(static_gb, "static_gb")
    out = []
    for params, method in CASES:
        got = static_gb(params, method)
        expect(isinstance(got, (int, float)), f"return a number of GB, got {type(got).__name__}")
        out.append(got)
    return out


@judge("09.2")
def judge_static_gb(outputs: list) -> str:
    outputs = _numbers(outputs, len(CASES))
    for (params, method), got in zip(CASES, outputs):
        want = estimate_memory(params, method, "bf16", batch=0)
        expect(not math.isclose(got, want.total * GB / 1e9, rel_tol=1e-3),
               "you used 1 GB = 10^9 bytes", "this lesson uses GiB: divide by 1024**3")
        if method == "full":
            expect(not math.isclose(got, params * 2 / GB, rel_tol=1e-2),
                   "full fine-tuning: you counted only the weights",
                   "every parameter also has a gradient and two AdamW moments")
        expect(math.isclose(got, want.total, rel_tol=0.01),
               f"{method} for {params / 1e9:g}B parameters: you said {got:.2f} GB",
               "weights at their storage size + gradients and AdamW moments for what trains; "
               "reread the table of bytes per parameter above the exercise")
    return "full, LoRA and QLoRA static memory agree with the course's estimator"
