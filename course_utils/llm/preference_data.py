"""Preference data for DPO: candidate answers ranked by the course's rubric, (chosen, rejected)
pairs built from rankings, OpenAI's preference JSONL format (validated line by line like the chat
format in `chat_data`), conversion to TRL's conversational pairs, and the hub preference set the
`full` profile uses."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path
from typing import Any, Iterable

from course_utils.llm import instruct_data as data
from course_utils.llm.chat_data import (DEFAULT_ENCODING, MIN_EXAMPLES, Problem, ValidationReport,
                                        _check_message, count_tokens, get_encoding, jsonl_objects)
from course_utils.llm.judging import Reply, rubric

# `full` profile: binarized UltraFeedback. Schema (dataset card): `chosen` and `rejected` (each a
# list of {"content", "role"}: the user turn, then the assistant's reply; TRL's "implicit prompt"
# layout, no separate prompt column), `score_chosen` and `score_rejected` (float64); splits
# `train` (62,135 rows) and `test` (1,000 rows).
HUB_PREFERENCE_DATASET = "trl-lib/ultrafeedback_binarized"

PREFERENCE_KEYS = {"input", "preferred_output", "non_preferred_output"}
INPUT_KEYS = {"messages", "tools", "parallel_tool_calls"}
PREFERENCE_ERROR_KINDS = ("invalid_json", "not_an_object", "unknown_key", "missing_input", "missing_messages",
                          "message_not_an_object", "missing_role", "missing_content", "unknown_role",
                          "content_wrong_type", "bad_weight", "last_input_not_user", "bad_output",
                          "identical_outputs", "duplicate_example", "too_many_tokens", "too_few_examples")


def load_hub_preference_dataset(split: str = "train"):
    """The `full` profile's preference pairs from the hub (through `course_utils.hub`, so the
    rehearsal can replace it with a stand-in)."""
    from course_utils.hub import load_dataset

    return load_dataset(HUB_PREFERENCE_DATASET)[split]


def hub_pairs(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """UltraFeedback rows -> conversational pairs: the prompt messages, then each reply alone."""
    return [{"prompt": r["chosen"][:-1], "chosen": r["chosen"][-1:], "rejected": r["rejected"][-1:]} for r in rows]


# ---------------------------------------------------------------- ranked answers and pairs


STYLES = ("sentence", "terse", "wrong")  # candidate answers written for every question


def ranked_answers(animals: list[str], seed: int = 0, context: bool = False) -> list[dict[str, Any]]:
    """For every question about `animals`: candidate answers in the three styles, each scored by
    the rubric (as if a grader had read them), best first; `context=True` states the facts in a
    system message (for a hub model that never read this world)."""
    facts = data.world(seed)
    out = []
    for animal, attribute, q in data.qa_prompts(animals):
        cands = [data.answer(animal, attribute, s, seed) for s in STYLES]
        scored = [(c, rubric(Reply(c, True), animal, attribute, facts)["score"]) for c in cands]
        out.append({"prompt": data.prompt_messages(animal, attribute, context),
                    "answers": sorted(scored, key=lambda cs: -cs[1])})
    return out


def pairs_from_ranking(answers: list[tuple[str, float]]) -> list[tuple[str, str]]:
    """(chosen, rejected) for every two answers whose scores differ, the higher-scored one chosen;
    ties give no pair (they carry no preference), and a text listed twice counts once, at its
    best score."""
    best: dict[str, float] = {}
    for text, score in answers:
        best[text] = max(score, best.get(text, score))
    pairs = []
    for (a, sa), (b, sb) in combinations(best.items(), 2):
        if sa != sb:
            pairs.append((a, b) if sa > sb else (b, a))
    return pairs


def preference_rows(ranked: list[dict[str, Any]], builder=pairs_from_ranking) -> list[dict[str, Any]]:
    """TRL's conversational preference rows (`prompt`, `chosen`, `rejected`) from ranked answers."""
    rows = []
    for item in ranked:
        for chosen, rejected in builder(item["answers"]):
            rows.append({"prompt": item["prompt"], "chosen": [{"role": "assistant", "content": chosen}],
                         "rejected": [{"role": "assistant", "content": rejected}]})
    return rows


# ---------------------------------------------------------------- OpenAI's preference format


def to_openai(row: dict[str, Any]) -> dict[str, Any]:
    """One TRL conversational pair as a line of OpenAI's DPO training file."""
    return {"input": {"messages": row["prompt"]}, "preferred_output": row["chosen"],
            "non_preferred_output": row["rejected"]}


def from_openai(record: dict[str, Any]) -> dict[str, Any]:
    """One (validated) line of OpenAI's DPO file as a TRL conversational pair."""
    clean = lambda msgs: [{"role": m["role"], "content": m["content"]} for m in msgs]
    return {"prompt": clean(record["input"]["messages"]), "chosen": clean(record["preferred_output"]),
            "rejected": clean(record["non_preferred_output"])}


def _check_output(value: Any, name: str, line: int, add) -> None:
    if not isinstance(value, list) or len(value) != 1:
        add(line, "bad_output", f"'{name}' must be a list holding exactly one assistant message")
        return
    m = value[0]
    if not isinstance(m, dict) or m.get("role") != "assistant":
        add(line, "bad_output", f"'{name}' must hold a message with role 'assistant'")
    elif not isinstance(m.get("content"), str) or not m["content"].strip():
        add(line, "bad_output", f"'{name}' needs a non-empty string 'content'")


def validate_preference_jsonl(path: str | Path, max_tokens: int = 65536, min_examples: int = MIN_EXAMPLES,
                              encoding: str = DEFAULT_ENCODING) -> ValidationReport:
    """Check an OpenAI DPO training file (`input.messages`, `preferred_output`,
    `non_preferred_output` per line) before uploading it: every problem with its line and kind."""
    report = ValidationReport(encoding=get_encoding(encoding).name)
    add = lambda line, kind, msg, sev="error": report.problems.append(Problem(line, kind, msg, sev))
    seen: dict[str, int] = {}
    for line, ex in jsonl_objects(path, report, add):
        before = len(report.problems)
        for key in sorted(set(ex) - PREFERENCE_KEYS):
            add(line, "unknown_key", f"unknown top-level key {key!r}")
        inp = ex.get("input")
        if not isinstance(inp, dict):
            add(line, "missing_input", "no 'input' object (it holds the prompt's 'messages')")
            messages = None
        else:
            for key in sorted(set(inp) - INPUT_KEYS):
                add(line, "unknown_key", f"unknown key {key!r} in 'input'")
            messages = inp.get("messages")
            if not isinstance(messages, list) or not messages:
                add(line, "missing_messages", "'input.messages' is missing, empty or not a list")
                messages = None
        if messages:
            for i, m in enumerate(messages):
                _check_message(m, i, line, add)
            last = messages[-1]
            if isinstance(last, dict) and last.get("role") != "user":
                add(line, "last_input_not_user", "the last message of 'input.messages' must be the user's turn")
        for name in ("preferred_output", "non_preferred_output"):
            _check_output(ex.get(name), name, line, add)
        if len(report.problems) == before and ex["preferred_output"] == ex["non_preferred_output"]:
            add(line, "identical_outputs", "preferred and non-preferred outputs are identical: no preference to learn")
        key = json.dumps(ex, sort_keys=True)
        if key in seen:
            add(line, "duplicate_example", f"exact duplicate of line {seen[key]}")
        seen.setdefault(key, line)
        if len(report.problems) > before:
            continue
        n = max(count_tokens(messages + ex[name], encoding).tokens for name in ("preferred_output", "non_preferred_output"))
        report.tokens_per_example.append(n)
        if n > max_tokens:
            add(line, "too_many_tokens", f"{n} tokens > limit {max_tokens}; the excess is truncated")
    if report.n_examples < min_examples:
        add(None, "too_few_examples", f"{report.n_examples} example(s); at least {min_examples} are required")
    report.problems.sort(key=lambda p: (p.line is None, p.line or 0))
    return report
