"""The notebook's side of lesson 15: the single-process baseline that the ranks are compared
with, the launch of the ranks, reloading their checkpoint in one process, and the tables."""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from course_utils.distributed.launch import Launch, launch
from course_utils.distributed.training import Curve, Plan, autocast, grad_vector, train
from course_utils.torch_utils import one_thread_on_cpu


def function_source(fn: Callable) -> str:
    """The source of a function defined with `def` (in a module or a notebook cell), dedented,
    so it can be rebuilt in a fresh process; a clear error for lambdas and built-ins."""
    if not callable(fn) or getattr(fn, "__name__", "<lambda>") == "<lambda>":
        raise TypeError("pass a function defined with `def`, not a lambda or a value")
    try:
        return textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise TypeError(f"cannot read the source of {fn.__name__}: define it with `def` in a cell") from exc


@dataclass
class Baseline:
    """The single-process run: its loss curve and the full global batch's gradient at step 0."""

    curve: Curve
    gradient: torch.Tensor


def single_process(profile: str, device: torch.device, precision: str, plan: Plan,
                   pairs: list[tuple[str, str]]) -> Baseline:
    """Train on one process with gradient accumulation standing in for the other ranks: the
    reference every launch is compared with (same model, data order, loss and optimizer)."""
    from course_utils.llm.causal_lm import chat_batch, load_causal_lm

    if plan.processes != 1:
        raise ValueError("the single-process baseline has processes=1; use accumulation instead")
    torch.manual_seed(plan.seed)
    model, tok = load_causal_lm(profile, dtype=torch.float32)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.lr, weight_decay=0.0)
    batch_of = lambda ids: chat_batch(tok, [pairs[i] for i in ids], device)
    grads: list[torch.Tensor] = []
    # one thread on a CPU whatever the model's size, as each rank does, so throughputs compare processes
    with one_thread_on_cpu(model, below=2**63):
        curve = train(model, optimizer, batch_of, plan, len(pairs),
                      forward_context=lambda: autocast(device, precision),
                      after_backward=lambda step: grads.append(grad_vector(model)) if step == 0 else None)
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the ranks need the GPU memory next
    return Baseline(curve, grads[0])


def launch_lesson(profile: str, device: torch.device, precision: str, plan: Plan,
                  pairs: list[tuple[str, str]], save: Callable, checkpoint: str | Path,
                  timeout: float = 600.0) -> Launch:
    """One launch of `plan.processes` ranks running DDP then FSDP; rank 0 saves the sharded model
    with `save` (the learner's function when it passed, shipped to the ranks by its source)."""
    settings = {"profile": profile, "device": torch.device(device).type, "precision": precision,
                "plan": plan.row(), "pairs": [list(p) for p in pairs],
                "checkpoint": str(Path(checkpoint).resolve()),
                "save_source": function_source(save), "save_name": save.__name__}
    return launch("lesson", settings, plan.processes, timeout=timeout)


def relative_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest elementwise difference, relative to the largest magnitude: 0 means identical."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


@torch.no_grad()
def reload_outputs(profile: str, checkpoint: str | Path, pairs: list[tuple[str, str]],
                   probe_ids: list[int]) -> torch.Tensor:
    """Load the checkpoint rank 0 wrote into a fresh model in this one process, and return its
    logits on the probe examples the ranks used."""
    from course_utils.llm.causal_lm import chat_batch, load_causal_lm

    model, tok = load_causal_lm(profile, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(torch.load(checkpoint, weights_only=True), strict=False)
    real_missing = [k for k in missing if k != "lm_head.weight" or not model.config.tie_word_embeddings]
    if real_missing or unexpected:
        raise ValueError(f"checkpoint does not fit the model: missing {real_missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
    probe = chat_batch(tok, [pairs[i] for i in probe_ids])
    return model.eval()(input_ids=probe["input_ids"], attention_mask=probe["attention_mask"]).logits.float()


def memory_rows(result: dict) -> list[dict]:
    """Per-rank MB of parameters, gradients and optimizer state under DDP and under FSDP."""
    rows = []
    for strategy in ("ddp", "fsdp"):
        for rank, b in enumerate(result[strategy]["bytes"]):
            rows.append({"strategy": strategy.upper(), "rank": rank,
                         **{k: v / 1e6 for k, v in b.items()},
                         "params+optimizer": (b["parameters"] + b["optimizer"]) / 1e6})
    return rows
