"""Checks for lesson 00 (set-up): moving a batch to a device, choosing a precision."""

from __future__ import annotations

import torch

from ..checks import checker, expect, expect_callable, judge

KEYS = ["epoch", "input_ids", "labels", "texts"]
DTYPES = {"input_ids": str(torch.long), "labels": str(torch.float32)}


@checker("00.1", "move a batch to a device", answer="to_device")
def probe_to_device(to_device) -> dict:
    expect_callable(to_device, "to_device")
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long), "labels": torch.zeros(2),
             "texts": ["a", "b"], "epoch": 3}
    moved = to_device(batch, torch.device("meta"))
    if not isinstance(moved, dict):
        return {"type": type(moved).__name__}
    tensors = {k: {"tensor": isinstance(moved[k], torch.Tensor),
                   "device": str(getattr(moved[k], "device", "?")),
                   "device_type": getattr(getattr(moved[k], "device", None), "type", "?"),
                   "dtype": str(getattr(moved[k], "dtype", "?"))} for k in DTYPES if k in moved}
    return {"type": "dict", "keys": sorted(map(str, moved)), "tensors": tensors,
            "texts": moved.get("texts"), "epoch": moved.get("epoch"),
            "input_device_after": batch["input_ids"].device.type}


@judge("00.1")
def judge_to_device(got: dict) -> str:
    expect(got["type"] == "dict", f"return a dict, not {got['type']}")
    expect(got["keys"] == KEYS, f"keep every key: expected {KEYS}, got {got['keys']}",
           "values that are not tensors (lists, numbers) must come back unchanged, not dropped")
    for key, dtype in DTYPES.items():
        moved = got["tensors"][key]
        expect(moved["tensor"] is True and moved["device_type"] == "meta",
               f"{key!r} is still on {moved['device']}", "call `.to(device)` on each tensor")
        expect(moved["dtype"] == dtype, f"{key!r} changed dtype",
               "move with `.to(device)` only; do not convert the dtype")
    expect(got["texts"] == ["a", "b"] and got["epoch"] == 3,
           "non-tensor values were changed", "only tensors have a device; pass other values through")
    expect(got["input_device_after"] == "cpu", "the input batch was modified in place",
           "build and return a new dict")
    return "tensors moved, everything else passed through"


CASES = {None: "fp32", (7, 5): "fp16", (7, 0): "fp16", (8, 0): "bf16", (8, 6): "bf16", (9, 0): "bf16"}


@checker("00.2", "choose a mixed-precision mode", answer="choose_precision")
def probe_precision(choose_precision) -> list:
    expect_callable(choose_precision, "choose_precision")
    return [choose_precision(capability) for capability in CASES]


@judge("00.2")
def judge_precision(outputs: list) -> str:
    expect(isinstance(outputs, list) and len(outputs) == len(CASES), "your answer gave no result per case")
    for (capability, want), got in zip(CASES.items(), outputs):
        where = "a CPU (no capability)" if capability is None else f"compute capability {capability}"
        expect(got == want, f"for {where} you returned {got!r}",
               "bf16 needs compute capability 8.0 or newer (Ampere); older GPUs such as the "
               "T4 (7.5) use fp16, and a CPU trains in fp32")
    return "right for CPU, T4, A100 and H100"
