"""Judging generated text: greedy replies that record whether the model stopped, exact match,
held-out loss and perplexity on the assistant's tokens, a deterministic rubric, and the general
ability (loss on the pretraining text) that fine-tuning can erode."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from course_utils.llm.tiny_world import ATTRIBUTES
from course_utils.torch_utils import one_thread_on_cpu
from course_utils.llm.sft import assistant_labels


@dataclass(frozen=True)
class Reply:
    """One generated answer and whether the model ended it itself (emitted its end-of-turn token)."""

    text: str
    stopped: bool


def _prompt_ids(tok: PreTrainedTokenizerBase, prompt: str | list[dict[str, str]]) -> list[int]:
    msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return list(tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])


@torch.no_grad()
def _generate_batch(model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: list[list[int]],
                    max_new_tokens: int) -> list[Reply]:
    """Greedy replies to a batch of prompts, left-padded so that every reply starts at the end."""
    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    result = []
    for row in out[:, width:].tolist():
        stopped = tok.eos_token_id in row
        new = row[:row.index(tok.eos_token_id)] if stopped else row
        result.append(Reply(tok.decode(new, skip_special_tokens=True).strip(), stopped))
    return result


def replies(model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: list[str | list[dict[str, str]]],
            max_new_tokens: int = 24, batch_size: int = 32) -> list[Reply]:
    """The model's greedy replies to user prompts (or lists of messages) in its chat template,
    generated `batch_size` at a time (one thread for a tiny CPU model)."""
    if tok.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token: set one (e.g. tok.pad_token = tok.eos_token) to batch prompts")
    model.eval()
    ids = [_prompt_ids(tok, p) for p in prompts]
    with one_thread_on_cpu(model):
        return [r for i in range(0, len(ids), batch_size)
                for r in _generate_batch(model, tok, ids[i:i + batch_size], max_new_tokens)]


def reply(model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompt: str | list[dict[str, str]],
          max_new_tokens: int = 24) -> Reply:
    """The model's greedy reply to one user prompt (or a list of messages) in its chat template."""
    return replies(model, tok, [prompt], max_new_tokens)[0]


def exact_match(answers: list[Reply | str], references: list[str]) -> float:
    """Share of answers equal to their reference, word for word: the strictest judge. A `Reply`
    counts only when the model also ended it itself; a plain string is compared as it is."""
    if len(answers) != len(references) or not answers:
        raise ValueError(f"{len(answers)} answers for {len(references)} references")
    hit = lambda a, r: (a.stopped and a.text == r) if isinstance(a, Reply) else a == r
    return sum(hit(a, r) for a, r in zip(answers, references)) / len(answers)


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
def _mean_loss(model: PreTrainedModel, rows: list[tuple[list[int], list[int]]], batch_size: int = 64) -> float:
    """Mean next-token cross-entropy over the labelled (not -100) positions, right-padded batches."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    model.eval()
    with one_thread_on_cpu(model):
        for i in range(0, len(rows), batch_size):
            chunk = rows[i:i + batch_size]
            width = max(len(ids) for ids, _ in chunk)
            x = torch.tensor([ids + [0] * (width - len(ids)) for ids, _ in chunk], device=device)
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in chunk], device=device)
            y = torch.tensor([labels + [-100] * (width - len(labels)) for _, labels in chunk], device=device)
            logits = model(input_ids=x, attention_mask=mask).logits[:, :-1].float()
            target = y[:, 1:]
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
