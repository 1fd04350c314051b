"""Small torch utilities every lesson shares: parameter counts and the CPU thread guard."""

from __future__ import annotations

import contextlib
from typing import Iterator, NamedTuple

import torch
from torch import nn


class ParamCount(NamedTuple):
    """Trainable and total parameters: the cost side of every fine-tuning method."""

    trainable: int
    total: int

    @property
    def fraction(self) -> float:
        """Share of the weights the optimiser updates."""
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.trainable:,} of {self.total:,} parameters trainable ({self.fraction:.2%})"


def _weights_in(p: torch.Tensor) -> int:
    # bitsandbytes packs two 4-bit weights into each byte of a Params4bit's storage (the same
    # rule peft's get_nb_trainable_parameters and transformers' num_parameters apply)
    if type(p).__name__ == "Params4bit":
        return p.numel() * 2 * p.element_size()
    return p.numel()


def count_parameters(model: nn.Module) -> ParamCount:
    """How many weights the optimiser will update, out of how many the model has, counting each
    4-bit weight once even though bitsandbytes packs two into a byte."""
    if hasattr(model, "get_nb_trainable_parameters"):  # a peft model: peft's own counter
        trainable, total = model.get_nb_trainable_parameters()
        return ParamCount(int(trainable), int(total))
    params = list(model.parameters())
    return ParamCount(sum(_weights_in(p) for p in params if p.requires_grad),
                      sum(_weights_in(p) for p in params))


@contextlib.contextmanager
def one_thread_on_cpu(model: nn.Module, below: int = 5_000_000) -> Iterator[None]:
    """Run a small model's CPU work on one thread: its matrices are too small to gain from two,
    and a second thread stalls badly when other processes compete for the cores (measured: 17 ms
    vs 124 ms per step for the tiny CNN on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    first = next(model.parameters(), None)
    small = first is not None and first.device.type == "cpu" and count_parameters(model).total < below
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
