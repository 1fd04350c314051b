"""Generated support tickets, messy the way real exports are: the raw material for turning records
into chat fine-tuning examples and for fixing a broken JSONL file."""

from __future__ import annotations

import json
import random

SUPPORT_SYSTEM = "You are Acme's support assistant. Answer in one or two friendly sentences."
PRODUCTS = ["router", "printer", "laptop", "phone", "smart watch", "camera"]
ISSUES = {
    "password": ("I can't log in to my {p} account", "Reset it at acme.com/reset; the link is valid for one hour."),
    "refund": ("I want my money back for the {p}", "You can request a refund within 30 days from Orders > Refund."),
    "shipping": ("Where is my {p} order?", "Your tracking link is in the confirmation e-mail; orders ship in 2 days."),
    "broken": ("My {p} stopped working", "Please hold the power button for 10 seconds; if that fails, we replace it."),
}


def raw_support_tickets(n: int = 40, seed: int = 0) -> list[dict]:
    """Ticket records from a help-desk export: subject, body, agent reply, with stray whitespace,
    some without a reply yet (those cannot teach anything)."""
    rng = random.Random(seed)
    tickets = []
    for i in range(n):
        kind = rng.choice(sorted(ISSUES))
        product = rng.choice(PRODUCTS)
        subject, reply = ISSUES[kind]
        tickets.append({"id": 1000 + i, "subject": "  " + subject.format(p=product) + " ",
                        "body": f"Hello,\n{rng.choice(['since yesterday', 'after the update', 'again'])}. "
                                f"Order #{rng.randint(10000, 99999)}.\n",
                        "agent_reply": "" if i % 7 == 3 else reply + "  ", "category": kind})
    return tickets


def broken_jsonl_lines() -> list[str]:
    """A chat JSONL file as someone's script wrote it: wrong role names, answers split into a list
    of strings or given as content parts, a bare number as an answer, stray keys, a truncated line
    and an empty example (the validator finds every one)."""
    good = lambda q, a: {"messages": [{"role": "system", "content": SUPPORT_SYSTEM},
                                      {"role": "user", "content": q}, {"role": "assistant", "content": a}]}
    lines = []
    for i, (kind, (q, a)) in enumerate(sorted(ISSUES.items()) * 3):
        ex = good(q.format(p=PRODUCTS[i % len(PRODUCTS)]), a)
        user, assistant = ex["messages"][1], ex["messages"][2]
        if i % 4 == 1:
            user["role"], assistant["role"] = "human", "bot"
        if i in (2, 6):  # the answer split into sentences
            words = a.split()
            assistant["content"] = [" ".join(words[:4]), " ".join(words[4:])]
        if i == 10:  # content parts: valid for the API, but our local trainer wants one string
            assistant["content"] = [{"type": "text", "text": a}]
        if i == 9:
            words = user["content"].split()
            user["content"] = [" ".join(words[:3]), " ".join(words[3:])]
        if i == 7:  # an export bug put the ticket's age in days where the answer belongs
            assistant["content"] = 30
        if i == 4:
            user["timestamp"] = "2024-05-01T10:00:00Z"
        if i % 5 == 3:
            ex["ticket_id"] = 1000 + i
        lines.append(json.dumps(ex))
    lines.insert(5, lines[5][: len(lines[5]) // 2])  # a line cut in half
    lines.append(json.dumps({"messages": []}))
    return lines
