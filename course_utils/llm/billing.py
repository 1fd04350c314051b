"""Tokens to dollars as OpenAI bills fine-tuning: the dated price table, the per-example token
cap, the epochs `n_epochs="auto"` picks, and the estimate of a job's billed tokens and cost."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from course_utils.llm.chat_data import ValidationReport


def token_limit(model: str) -> int:
    """Tokens per example that `model` trains on; longer examples are truncated, not rejected."""
    return price_table()["max_tokens_per_example"].get(model, 65536)


@lru_cache(maxsize=1)
def price_table() -> dict[str, Any]:
    """OpenAI's fine-tuning training prices, with the date they were copied (one data file)."""
    return json.loads(resources.files("course_utils").joinpath("data/openai_prices.json").read_text())


def default_epochs(n_examples: int) -> int:
    """The epoch count OpenAI estimates for `n_epochs="auto"` (its cookbook's data-preparation
    recipe): 3, or `100 // n` (at most 25) when 3 epochs would show fewer than 100 examples, or
    `25000 // n` (at least 1) when they would show more than 25,000."""
    if n_examples <= 0:
        return 0
    if n_examples * 3 < 100:
        return min(25, 100 // n_examples)
    if n_examples * 3 > 25000:
        return max(1, 25000 // n_examples)
    return 3


@dataclass(frozen=True)
class CostEstimate:
    """What a job would cost: billed tokens = tokens in the file (capped per example) x epochs."""

    model: str
    n_examples: int
    epochs: int
    file_tokens: int
    billed_tokens: int
    usd: float
    encoding: str
    price_date: str

    def __str__(self) -> str:
        return (f"{self.n_examples} examples, {self.file_tokens:,} tokens ({self.encoding}) x "
                f"{self.epochs} epochs = {self.billed_tokens:,} billed tokens -> ~${self.usd:.4f} "
                f"on {self.model} (prices of {self.price_date})")


def estimate_cost(report: ValidationReport, model: str = "gpt-4o-mini-2024-07-18",
                  n_epochs: int | None = None) -> CostEstimate:
    """Epochs and dollars for fine-tuning `model` on a validated file, from the dated price table."""
    table = price_table()
    if model not in table["training"]:
        raise ValueError(f"no training price for {model!r}; known: {', '.join(table['training'])}")
    cap = token_limit(model)
    epochs = n_epochs or default_epochs(report.n_examples)
    file_tokens = sum(min(cap, n) for n in report.tokens_per_example)
    billed = file_tokens * epochs
    usd = billed * table["training"][model] / 1_000_000
    return CostEstimate(model, report.n_examples, epochs, file_tokens, billed, usd,
                        report.encoding, table["date"])
