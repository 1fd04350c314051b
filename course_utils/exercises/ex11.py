"""Checks for lesson 11 (OpenAI fine-tuning): the training example the job learns from, records
to chat examples, and repairing a broken JSONL file."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..checks import checker, expect, expect_callable, judge
from ..llm.tiny_world import ONE_WORD_SYSTEM
from ..llm.chat_data import content_text, validate_jsonl, write_jsonl
from ..llm.support_tickets import SUPPORT_SYSTEM, broken_jsonl_lines, raw_support_tickets


def _validate(examples: list) -> object:
    with tempfile.TemporaryDirectory() as tmp:
        return validate_jsonl(write_jsonl(examples, Path(tmp) / "train.jsonl"))


PAIRS = [("what color is the fox ?", "red"), ("  where does the owl live ?", "forest "),
         ("what does the bear eat ?\n", "\tberries"), ("what color is the seal ?", "grey")]


@checker("11.1", "one training example for the fine-tuning job", answer="to_example")
def probe_to_example(to_example) -> list:
    expect_callable(to_example, "to_example")
    return [to_example(q, a) for q, a in PAIRS]


@judge("11.1")
def judge_to_example(out: list) -> str:
    expect(isinstance(out, list) and len(out) == len(PAIRS), "your answer gave no example per pair")
    examples = []
    for (q, a), ex in zip(PAIRS, out):
        expect(not isinstance(ex, str), "you returned a JSON string",
               "return the dict; `write_jsonl` turns it into one line of the file")
        expect(isinstance(ex, dict) and isinstance(ex.get("messages"), list),
               f"expected a dict with a 'messages' list, got {type(ex).__name__}",
               'one example is {"messages": [...]}, not the list of messages itself')
        expect(set(ex) == {"messages"}, f"unknown top-level keys {sorted(set(ex) - {'messages'})}")
        roles = [m.get("role") for m in ex["messages"] if isinstance(m, dict)]
        expect(roles == ["system", "user", "assistant"] and len(ex["messages"]) == 3, f"roles are {roles}",
               "a system message, the user's question, then the assistant's answer")
        system, user, assistant = (m.get("content") for m in ex["messages"])
        expect(system == ONE_WORD_SYSTEM, f"the system message is {system!r}",
               "use ONE_WORD_SYSTEM: the same system prompt the lesson sends at inference")
        expect(assistant == a.strip(), f"the answer for {q.strip()!r} is {assistant!r}",
               "the assistant message is the answer, stripped: stray spaces become tokens the model learns")
        expect(user == q.strip(), f"the user message is {user!r}", "the question, stripped")
        examples.append(ex)
    report = _validate(examples * 3)
    expect(report.ok, "the validator rejects your examples: " + "; ".join(map(str, report.errors[:2])))
    return "system, user, assistant: the job can train on these"


@checker("11.2", "support ticket to chat example", answer="ticket_to_example")
def probe_ticket_to_example(ticket_to_example) -> list:
    expect_callable(ticket_to_example, "ticket_to_example")
    return [ticket_to_example(dict(t)) for t in raw_support_tickets(n=30, seed=5)]


@judge("11.2")
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


def _words(text: str) -> str:
    return " ".join(text.split())


def _expected_texts(line: str) -> list[str] | None:
    """The text each message of a broken line should end up with (None: the line cannot be saved)."""
    try:
        ex = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not ex.get("messages") or any(not isinstance(m.get("content"), (str, list)) for m in ex["messages"]):
        return None
    return [_words(" ".join(c if isinstance(c, str) else c.get("text", "") for c in m["content"]))
            if isinstance(m["content"], list) else _words(m["content"]) for m in ex["messages"]]


@checker("11.3", "repair a broken JSONL file", answer="fix_line")
def probe_fix_line(fix_line) -> list:
    expect_callable(fix_line, "fix_line")
    return [fix_line(line) for line in broken_jsonl_lines()]


@judge("11.3")
def judge_fix_line(fixed: list) -> str:
    lines = broken_jsonl_lines()
    expect(isinstance(fixed, list) and len(fixed) == len(lines), "your answer gave no result per line")
    for line, ex in zip(lines, fixed):
        want = _expected_texts(line)
        if ex is None:
            expect(want is None, f"you dropped a line that can be repaired: {line[:90]}...",
                   "only a line cut in half, one without messages and one whose answer is a number are lost")
            continue
        expect(isinstance(ex, dict) and isinstance(ex.get("messages"), list),
               f"return a dict with a 'messages' list (or None), got {type(ex).__name__}")
        expect(all(isinstance(m, dict) for m in ex["messages"]), "each message is a dict")
        got = [m.get("content") for m in ex["messages"]]
        listy = [c for c in got if isinstance(c, str) and c.lstrip().startswith("[")]
        expect(not listy, f"content {listy[0]!r} looks like str() of a list" if listy else "",
               "when content is a list, join the text of its items with spaces instead of calling str() on it")
        expect(not any(isinstance(c, str) and c.strip().isdigit() for c in got),
               "you kept a bare number as a training target",
               "an answer that is a number where text belongs is an export bug: drop that example "
               "(lesson 12: a model learns whatever garbage you give it)")
        expect(want is not None, f"this line cannot be repaired, but you returned {ex}",
               "return None for it")
        expect(len(got) == len(want) and all(_words(content_text(c)) == w for c, w in zip(got, want)),
               f"the text of {line[:70]}... changed", "join list items with a space and keep every word")
    kept = [ex for ex in fixed if ex is not None]
    report = _validate(kept)
    expect(report.ok, f"the validator still finds {len(report.errors)} error(s), e.g. "
           + "; ".join(map(str, report.errors[:2])), "print `validate_jsonl(path).summary()` and fix each kind")
    expect(not report.kinds().get("unknown_example_key"),
           "keys the API does not know are still there", "keep only 'messages' at the top level")
    expect(len({json.dumps(e, sort_keys=True) for e in kept}) == len(kept), "your output has duplicates")
    return f"{len(kept)} repaired examples, validator clean"
