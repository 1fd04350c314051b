"""Checks for lesson 00 (set-up): moving a batch to a device, choosing a precision."""

from __future__ import annotations

import torch

from ..checks import checker, expect, expect_callable


@checker("00.1", "move a batch to a device")
def check_to_device(to_device) -> str:
    expect_callable(to_device, "to_device")
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long), "labels": torch.zeros(2),
             "texts": ["a", "b"], "epoch": 3}
    moved = to_device(batch, torch.device("meta"))
    expect(isinstance(moved, dict), f"return a dict, not {type(moved).__name__}")
    expect(set(moved) == set(batch), f"keep every key: expected {sorted(batch)}, got {sorted(moved)}",
           "values that are not tensors (lists, numbers) must come back unchanged, not dropped")
    for key in ("input_ids", "labels"):
        expect(isinstance(moved[key], torch.Tensor) and moved[key].device.type == "meta",
               f"{key!r} is still on {getattr(moved[key], 'device', '?')}",
               "call `.to(device)` on each tensor")
        expect(moved[key].dtype == batch[key].dtype, f"{key!r} changed dtype",
               "move with `.to(device)` only; do not convert the dtype")
    expect(moved["texts"] == ["a", "b"] and moved["epoch"] == 3,
           "non-tensor values were changed", "only tensors have a device; pass other values through")
    expect(batch["input_ids"].device.type == "cpu", "the input batch was modified in place",
           "build and return a new dict")
    return "tensors moved, everything else passed through"


@checker("00.2", "choose a mixed-precision mode")
def check_precision(choose_precision) -> str:
    expect_callable(choose_precision, "choose_precision")
    cases = {None: "fp32", (7, 5): "fp16", (7, 0): "fp16", (8, 0): "bf16", (8, 6): "bf16",
             (9, 0): "bf16"}
    for capability, want in cases.items():
        got = choose_precision(capability)
        where = "a CPU (no capability)" if capability is None else f"compute capability {capability}"
        expect(got == want, f"for {where} you returned {got!r}",
               "bf16 needs compute capability 8.0 or newer (Ampere); older GPUs such as the "
               "T4 (7.5) use fp16, and a CPU trains in fp32")
    return "right for CPU, T4, A100 and H100"
