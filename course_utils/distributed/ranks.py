"""What each rank of the lesson's launch does: DDP through `accelerate`, FSDP through PyTorch's
`fully_shard`, a gradient snapshot before and after the all-reduce, exact per-rank memory, and a
sharded model saved from rank 0 with the learner's save function. Runs inside
`python -m torch.distributed.run`, started by `course_utils.distributed.launch`.
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from course_utils.distributed.training import (Plan, all_chunks, grad_vector, labelled_tokens, state_bytes,
                                               token_loss_sum, train)
from course_utils.distributed.worker import learner_function


def _model(settings: dict, device: torch.device):
    from course_utils.llm.causal_lm import load_causal_lm

    model, tok = load_causal_lm(settings["profile"], dtype=torch.float32)  # fp32 master weights
    return model.to(device), tok


def _batch_of(tok, pairs: list, device: torch.device):
    from course_utils.llm.causal_lm import chat_batch

    return lambda ids: chat_batch(tok, [tuple(pairs[i]) for i in ids], device)


def _gather(obj):
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def _max_gap(vectors: list[torch.Tensor]) -> float:
    return max(float((v - vectors[0]).abs().max()) for v in vectors)


def lesson(settings: dict, run_dir: Path) -> dict | None:
    """DDP, then FSDP, on the same plan and data; rank 0 returns what the notebook shows."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    cpu = settings["device"] == "cpu"
    precision = settings["precision"]
    accelerator = Accelerator(cpu=cpu, mixed_precision="bf16" if precision == "bf16" else "no",
                              kwargs_handlers=[InitProcessGroupKwargs(
                                  timeout=timedelta(seconds=settings["pg_timeout"]))])
    rank, world, device = accelerator.process_index, accelerator.num_processes, accelerator.device
    if cpu:
        torch.set_num_threads(1)  # one core per process: the comparison is processes, not threads
    plan = Plan(**settings["plan"])
    if plan.processes != world:
        raise ValueError(f"the plan is for {plan.processes} processes, the launch has {world}")
    pairs, n = settings["pairs"], len(settings["pairs"])
    out: dict = {"world": world, "backend": dist.get_backend(), "device": str(device)}
    reduce_sum = lambda t: accelerator.reduce(t.detach().clone(), "sum")

    # --- DDP: every rank holds the whole model; gradients are all-reduced (averaged) --------------
    torch.manual_seed(plan.seed)
    model, tok = _model(settings, device)
    batch_of = _batch_of(tok, pairs, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.lr, weight_decay=0.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    out["wrapper"] = type(model).__name__

    # gradients of step 0's batch, first without the all-reduce (no_sync), then with it
    first = [batch_of(ids) for ids in plan.micro_batches(0, rank, n)]
    count = sum(labelled_tokens(batch_of(ids)) for ids in all_chunks(plan, 0, n))

    def step0_gradients(sync: bool) -> torch.Tensor:
        for batch in first:  # DDP decides in forward whether the backward all-reduces
            with contextlib.nullcontext() if sync else accelerator.no_sync(model):
                accelerator.backward(token_loss_sum(model, batch)[0] / count * world)
        snapshot = grad_vector(model)
        optimizer.zero_grad(set_to_none=True)
        return snapshot

    local, synced = _gather(step0_gradients(sync=False)), _gather(step0_gradients(sync=True))
    out["grad_local_gap"], out["grad_synced_gap"] = _max_gap(local), _max_gap(synced)
    out["grad_synced"] = synced[0]
    out["tokens_per_rank_step0"] = _gather(sum(labelled_tokens(b) for b in first))

    ddp_bytes = {}
    def remember_bytes(step: int) -> None:
        if step == 0:
            ddp_bytes.update(state_bytes(model, optimizer))
    curve = train(model, optimizer, batch_of, plan, n, rank, reduce_sum=reduce_sum,
                  backward=accelerator.backward, after_backward=remember_bytes)
    ddp_bytes.update(optimizer=state_bytes(model, optimizer)["optimizer"])
    out["ddp"] = {"losses": curve.losses, "seconds_per_step": curve.seconds_per_step,
                  "bytes": _gather(ddp_bytes)}
    del model, optimizer
    accelerator.free_memory()

    # --- FSDP: each rank keeps 1/world of every parameter, gradient and optimizer state ----------
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    torch.manual_seed(plan.seed)
    model, tok = _model(settings, device)
    policy = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
              if precision == "bf16" else MixedPrecisionPolicy())
    for layer in model.model.layers:
        fully_shard(layer, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.lr, weight_decay=0.0)
    fsdp_bytes = {}
    def remember_fsdp(step: int) -> None:
        if step == 0:
            fsdp_bytes.update(state_bytes(model, optimizer))
    curve = train(model, optimizer, batch_of, plan, n, rank, reduce_sum=reduce_sum,
                  after_backward=remember_fsdp)
    fsdp_bytes.update(optimizer=state_bytes(model, optimizer)["optimizer"])
    out["fsdp"] = {"losses": curve.losses, "seconds_per_step": curve.seconds_per_step,
                   "bytes": _gather(fsdp_bytes)}

    # --- save: gathering the full state is collective; writing it is rank 0's job ----------------
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    save = learner_function(settings["save_source"], settings["save_name"])
    save(rank, state, settings["checkpoint"], accelerator.wait_for_everyone)
    out["checkpoint_on_every_rank"] = _gather(os.path.exists(settings["checkpoint"]))
    probe = batch_of(list(range(min(4, n))))
    with torch.no_grad():
        logits = model(input_ids=probe["input_ids"], attention_mask=probe["attention_mask"]).logits
    out["probe_ids"] = list(range(min(4, n)))
    out["probe_logits"] = logits.float().cpu()
    accelerator.wait_for_everyone()
    return out if rank == 0 else None


