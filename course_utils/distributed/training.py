"""Data-parallel training that one process and N processes run identically: the global batch,
the token-weighted loss that makes N ranks add up to one full batch, the loop, gradient
snapshots and the exact per-rank byte count of parameters, gradients and optimizer state.

The single-process baseline in the notebook and every rank of a launch call the same functions
here, so any difference between their loss curves comes from the parallelism, not the code.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F


def global_batch_and_steps(per_device_batch: int, processes: int, accumulation: int,
                           examples: int, epochs: int) -> tuple[int, int]:
    """The course's answer to exercise 15.1: examples per optimizer step, and how many optimizer
    steps `epochs` passes over `examples` make when each epoch drops its last partial batch."""
    global_batch = per_device_batch * processes * accumulation
    return global_batch, epochs * (examples // global_batch)


def save_on_main(rank: int, state: dict, path: str, barrier: Callable[[], None]) -> None:
    """The course's answer to exercise 15.2: rank 0 writes, every rank waits until it has."""
    if rank == 0:
        import torch

        torch.save(state, path)
    barrier()


@dataclass(frozen=True)
class Plan:
    """One data-parallel configuration: who sees which examples at which optimizer step."""

    per_device_batch: int
    processes: int
    accumulation: int
    global_batch: int
    steps: int
    lr: float
    seed: int = 0

    def __post_init__(self) -> None:
        want = self.per_device_batch * self.processes * self.accumulation
        if self.global_batch != want:
            raise ValueError(f"global batch {self.global_batch} != per-device batch "
                             f"{self.per_device_batch} x {self.processes} processes x "
                             f"{self.accumulation} accumulation steps = {want}")
        if min(self.per_device_batch, self.processes, self.accumulation, self.steps) < 1:
            raise ValueError("batch, processes, accumulation and steps must all be >= 1")

    def global_indices(self, step: int, examples: int) -> list[int]:
        """The examples of optimizer step `step`: a seeded shuffle per epoch, last partial batch
        dropped, so every process computes the same list without talking to the others."""
        per_epoch = examples // self.global_batch
        if per_epoch == 0:
            raise ValueError(f"{examples} examples cannot fill one global batch of {self.global_batch}")
        epoch, within = divmod(step, per_epoch)
        order = torch.randperm(examples, generator=torch.Generator().manual_seed(self.seed + epoch))
        return order[within * self.global_batch:(within + 1) * self.global_batch].tolist()

    def micro_batches(self, step: int, rank: int, examples: int) -> list[list[int]]:
        """This rank's micro-batches at `step`: chunk `a * processes + rank` for accumulation step a."""
        ids, b = self.global_indices(step, examples), self.per_device_batch
        return [ids[(a * self.processes + rank) * b:(a * self.processes + rank + 1) * b]
                for a in range(self.accumulation)]

    def row(self) -> dict:
        return asdict(self)


def token_loss_sum(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over the labelled tokens of a batch, and their count: sums
    add up across micro-batches and ranks, while a per-rank mean of means would not."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]
    loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=-100, reduction="sum")
    return loss, int((labels != -100).sum())


def labelled_tokens(batch: dict[str, torch.Tensor]) -> int:
    """How many tokens of a batch the loss counts (labels that are not -100, after the shift)."""
    return int((batch["labels"][:, 1:] != -100).sum())


def local_tensor(t: torch.Tensor) -> torch.Tensor:
    """The part of a (possibly sharded DTensor) tensor that lives in this process."""
    return t.to_local() if hasattr(t, "to_local") else t


def grad_vector(model: torch.nn.Module, limit: int = 2_000_000) -> torch.Tensor:
    """Every gradient flattened into one fp32 CPU vector (parameter order); for models over `limit`
    parameters, the first `limit // tensors` entries of each gradient, to keep snapshots small."""
    params = [p for p in model.parameters() if p.requires_grad]
    total = sum(p.numel() for p in params)
    cap = None if total <= limit else max(1, limit // len(params))
    parts = []
    for p in params:
        g = torch.zeros(p.numel()) if p.grad is None else local_tensor(p.grad).detach().float().reshape(-1).cpu()
        parts.append(g if cap is None else g[:cap])
    return torch.cat(parts)


def state_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes this process holds for parameters, gradients and optimizer state (AdamW's two
    moments; the step counters are left out), counted exactly from the local tensors."""
    params = list(model.parameters())
    count = lambda ts: sum(local_tensor(t).numel() * t.element_size() for t in ts)
    grads = [p.grad for p in params if p.grad is not None]
    moments = [v for s in optimizer.state.values() for k, v in s.items()
               if torch.is_tensor(v) and k != "step"]
    return {"parameters": count(params), "gradients": count(grads), "optimizer": count(moments)}


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU that has it, else nothing (fp16 would need a loss scaler per rank)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class Curve:
    """A training run's loss per optimizer step and its seconds per step (the first one left out)."""

    losses: list[float]
    seconds_per_step: float
    global_batch: int

    @property
    def samples_per_second(self) -> float:
        return self.global_batch / self.seconds_per_step


def train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch_of: Callable[[list[int]], dict],
          plan: Plan, examples: int, rank: int = 0, *, reduce_sum: Callable[[torch.Tensor], torch.Tensor] = lambda t: t,
          backward: Callable[[torch.Tensor], None] = lambda loss: loss.backward(),
          forward_context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
          after_backward: Callable[[int], None] | None = None) -> Curve:
    """`plan.steps` optimizer steps. Each micro-batch's loss is its token sum divided by the
    global batch's token count, times the number of processes (DDP and FSDP average gradients over
    ranks): the gradient is then exactly the full global batch's mean-token-loss gradient."""
    losses, times = [], []
    model.train()
    for step in range(plan.steps):
        start = time.perf_counter()
        micro = [batch_of(ids) for ids in plan.micro_batches(step, rank, examples)]
        everyone = [batch_of(ids) for ids in all_chunks(plan, step, examples)]
        count = sum(labelled_tokens(b) for b in everyone)
        total = torch.zeros((), device=micro[0]["input_ids"].device)
        for batch in micro:
            with forward_context():
                loss_sum, _ = token_loss_sum(model, batch)
            backward(loss_sum / count * plan.processes)
            total += loss_sum.detach()
        if after_backward is not None:
            after_backward(step)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(reduce_sum(total)) / count)
        times.append(time.perf_counter() - start)
    model.eval()
    steady = times[1:] or times
    return Curve(losses, sum(steady) / len(steady), plan.global_batch)


def all_chunks(plan: Plan, step: int, examples: int) -> Iterator[list[int]]:
    """Every micro-batch of a step's global batch, whichever rank trains on it."""
    ids, b = plan.global_indices(step, examples), plan.per_device_batch
    return (ids[i:i + b] for i in range(0, len(ids), b))
