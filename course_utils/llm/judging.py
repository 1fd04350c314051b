"""Judging generated text: greedy replies that record whether the model stopped, exact match,
held-out loss and perplexity on the assistant's tokens, a deterministic rubric, and the general
ability (loss on the pretraining text) that fine-tuning can erode."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from course_utils.llm.causal_lm import ATTRIBUTES, one_thread_on_cpu
from course_utils.llm.sft import assistant_labels


@dataclass(frozen=True)
class Reply:
    """One generated answer and whether the model ended it itself (emitted its end-of-turn token)."""

    text: str
    stopped: bool


@torch.no_grad()
def reply(model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompt: str | list[dict[str, str]],
          max_new_tokens: int = 24) -> Reply:
    """The model's greedy reply to one user prompt (or a list of messages) in its chat template."""
    model.eval()
    msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    device = next(model.parameters()).device
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True).to(device)
    out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    new = out[0, ids["input_ids"].shape[1]:].tolist()
    stopped = tok.eos_token_id in new
    if stopped:
        new = new[:new.index(tok.eos_token_id)]
    return Reply(tok.decode(new, skip_special_tokens=True).strip(), stopped)


def replies(model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: list[str | list[dict[str, str]]],
            max_new_tokens: int = 24) -> list[Reply]:
    """Greedy replies to many prompts (one thread for a tiny CPU model)."""
    with one_thread_on_cpu(model):
        return [reply(model, tok, p, max_new_tokens) for p in prompts]


def exact_match(answers: list[Reply], references: list[str]) -> float:
    """Share of replies that stopped and equal the reference exactly."""
    if len(answers) != len(references) or not answers:
        raise ValueError(f"{len(answers)} replies for {len(references)} references")
    return sum(a.stopped and a.text == r for a, r in zip(answers, references)) / len(answers)


def stop_rate(answers: list[Reply]) -> float:
    """Share of replies the model ended itself instead of running into the token limit."""
    return sum(a.stopped for a in answers) / len(answers)


RUBRIC = {"correct": 0.5, "names_the_animal": 0.2, "one_sentence": 0.15, "stopped": 0.15}


def rubric(answer: Reply, animal: str, attribute: str, facts: dict[str, dict[str, str]]) -> dict[str, Any]:
    """A deterministic grader, weights in RUBRIC: the right value and no other value of that
    attribute, the animal named, exactly one sentence, and a reply the model ended itself."""
    words = answer.text.split()
    values = set(ATTRIBUTES[attribute])
    said = values & set(words)
    checks = {"correct": said == {facts[animal][attribute]},
              "names_the_animal": animal in words,
              "one_sentence": answer.text.count(".") == 1 and answer.text.endswith("."),
              "stopped": answer.stopped}
    return {"score": sum(RUBRIC[k] for k, ok in checks.items() if ok), **checks}


def rubric_score(answers: list[Reply], prompts: list[tuple[str, str, str]], facts: dict[str, dict[str, str]]) -> float:
    """Mean rubric score over (animal, attribute, question) prompts, 0 to 1."""
    return sum(rubric(a, animal, k, facts)["score"] for a, (animal, k, _) in zip(answers, prompts)) / len(answers)


@torch.no_grad()
def _mean_loss(model: PreTrainedModel, rows: list[tuple[list[int], list[int]]]) -> float:
    device = next(model.parameters()).device
    total, count = 0.0, 0
    model.eval()
    for ids, labels in rows:
        x = torch.tensor([ids], device=device)
        y = torch.tensor([labels], device=device)
        logits = model(input_ids=x).logits[0, :-1].float()
        target = y[0, 1:]
        keep = target != -100
        if keep.any():
            total += torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum").item()
            count += int(keep.sum())
    return total / max(count, 1)


def heldout_loss(model: PreTrainedModel, tok: PreTrainedTokenizerBase, examples: list[dict[str, Any]]) -> dict[str, float]:
    """Mean cross-entropy per assistant token on held-out chats, and its perplexity exp(loss)."""
    rows = []
    for ex in examples:
        ids = tok.apply_chat_template(ex["messages"], tokenize=True, return_dict=True)["input_ids"]
        rows.append((list(ids), assistant_labels(list(ids), tok)))
    loss = _mean_loss(model, rows)
    return {"loss": loss, "perplexity": math.exp(loss)}


def corpus_loss(model: PreTrainedModel, tok: PreTrainedTokenizerBase, lines: list[str | dict[str, Any]]) -> float:
    """Mean cross-entropy per token on general text: plain lines (say the pretraining corpus), or
    chats (their assistant tokens): the general ability that fine-tuning should not erode."""
    if lines and isinstance(lines[0], dict):
        return heldout_loss(model, tok, lines)["loss"]
    rows = []
    for line in lines:
        ids = tok(line, add_special_tokens=False)["input_ids"]
        rows.append((ids, ids))
    return _mean_loss(model, rows)
