"""Checks for lesson 11 (OpenAI fine-tuning): records to chat examples, repairing a broken JSONL."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..llm.chat_data import validate_jsonl, write_jsonl
from ..checks import checker, expect, expect_callable, judge
from ..llm.support_tickets import SUPPORT_SYSTEM, broken_jsonl_lines, raw_support_tickets


def _validate(examples: list) -> object:
    with tempfile.TemporaryDirectory() as tmp:
        return validate_jsonl(write_jsonl(examples, Path(tmp) / "train.jsonl"))


@checker("11.1", "support ticket to chat example", answer="ticket_to_example")
def probe_ticket_to_example(ticket_to_example) -> list:
    expect_callable(ticket_to_example, "ticket_to_example")
    return [ticket_to_example(dict(t)) for t in raw_support_tickets(n=30, seed=5)]


@judge("11.1")
def judge_ticket_to_example(out: list) -> str:
    tickets = raw_support_tickets(n=30, seed=5)
    expect(isinstance(out, list) and len(out) == len(tickets), "your answer gave no result per ticket")
    for t, ex in zip(tickets, out):
        if not t["agent_reply"].strip():
            expect(ex is None, f"ticket {t['id']} has no agent reply, but you returned an example",
                   "an example without an answer teaches nothing: return None for it")
            continue
        expect(isinstance(ex, dict) and isinstance(ex.get("messages"), list),
               f"ticket {t['id']}: expected a dict with a 'messages' list, got {type(ex).__name__}")
        expect(all(isinstance(m, dict) for m in ex["messages"]), f"ticket {t['id']}: each message is a dict")
        roles = [m.get("role") for m in ex["messages"]]
        expect(roles == ["system", "user", "assistant"], f"ticket {t['id']}: roles are {roles}",
               "use exactly the roles 'system', 'user', 'assistant' in that order")
        system, user, assistant = (m.get("content") for m in ex["messages"])
        expect(system == SUPPORT_SYSTEM, "the system message is not SUPPORT_SYSTEM",
               "every example should carry the same system prompt, the one you will use at inference")
        expect(isinstance(user, str) and t["subject"].strip() in user and t["body"].strip() in user,
               f"ticket {t['id']}: the user message should contain the subject and the body")
        expect(user == user.strip(), f"ticket {t['id']}: the user message has leading/trailing whitespace",
               "strip the fields: stray spaces become tokens the model learns to produce")
        expect(assistant == t["agent_reply"].strip(), f"ticket {t['id']}: the assistant message is not "
               "the agent's reply", "use the stripped `agent_reply` as the assistant message")
    kept = [ex for ex in out if ex is not None]
    report = _validate(kept)
    expect(report.ok, "the validator rejects your examples: " + "; ".join(map(str, report.errors[:2])))
    return f"{len(kept)} valid examples from {len(tickets)} tickets"


@checker("11.2", "repair a broken JSONL file", answer="fix_line")
def probe_fix_line(fix_line) -> list:
    expect_callable(fix_line, "fix_line")
    return [fix_line(line) for line in broken_jsonl_lines()]


@judge("11.2")
def judge_fix_line(fixed: list) -> str:
    lines = broken_jsonl_lines()
    expect(isinstance(fixed, list) and len(fixed) == len(lines), "your answer gave no result per line")
    kept = [ex for ex in fixed if ex is not None]
    expect(len(kept) >= len(lines) - 2, f"you kept {len(kept)} of {len(lines)} lines",
           "only two lines cannot be repaired (one is cut in half, one has no messages); fix the rest")
    report = _validate(kept)
    expect(report.ok, f"the validator still finds {len(report.errors)} error(s), e.g. "
           + "; ".join(map(str, report.errors[:2])), "print `validate_jsonl(path).summary()` and fix each kind")
    for ex in kept:
        for m in ex["messages"]:
            expect(not m["content"].startswith("["), f"content {m['content']!r} looks like str() of a list",
                   "when content is a list of strings, join its items instead of calling str() on it")
    expect(len({json.dumps(e, sort_keys=True) for e in kept}) == len(kept), "your output has duplicates")
    return f"{len(kept)} repaired examples, validator clean"
