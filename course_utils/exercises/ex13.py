"""Checks for lesson 13 (instruction tuning): render a conversation in ChatML, build the
assistant-only label mask. Both compare with what the tokenizer's template and TRL produce."""

from __future__ import annotations

from functools import lru_cache

from ..checks import checker, expect, expect_callable, judge
from ..llm import causal_lm as clm
from ..llm import instruct_data as data
from ..llm.sft import trl_assistant_labels


@lru_cache(maxsize=1)
def _tokenizer():
    # the chat tokenizer alone: fitting it takes a second, no model is trained for a check
    corpus = clm.pretraining_corpus(clm.INSTRUCT_BASE.seed, chat=False)
    return clm.build_tokenizer(corpus, clm.INSTRUCT_BASE.vocab, "chatml")


def _cases() -> list[list[dict[str, str]]]:
    convs = [c["messages"] for c in data.conversations(clm.ANIMALS[:4], max_turns=3)][:8]
    system = [{"role": "system", "content": "answer in full sentences ."}]
    return convs + [system + convs[0], system + convs[-1],
                    [{"role": "user", "content": "hi !"}, {"role": "assistant", "content": "hello ."}]]


def _text(x) -> str | None:
    return x if isinstance(x, str) else None


@checker("13.1", "render a conversation in ChatML", answer="format_chat")
def probe_format_chat(format_chat) -> list:
    expect_callable(format_chat, "format_chat")
    out = []
    for msgs in _cases():
        got = format_chat(msgs)
        expect(isinstance(got, str), f"expected a string, got {type(got).__name__}")
        out.append([got, _text(format_chat(msgs[:-1], add_generation_prompt=True))])
    return out


@judge("13.1")
def judge_format_chat(outputs: list) -> str:
    cases = _cases()
    expect(isinstance(outputs, list) and len(outputs) == len(cases), "your function gave no text per conversation")
    tok = _tokenizer()
    for msgs, (got, got_prompt) in zip(cases, outputs):
        want = tok.apply_chat_template(msgs, tokenize=False)
        expect("<|im_start|>" in got and "<|im_end|>" in got, "no <|im_start|> / <|im_end|> markers in your text",
               "each message is '<|im_start|>' + role + newline + content + '<|im_end|>' + newline")
        expect(got == want, f"differs from the template for a {len(msgs)}-message chat: got {got[:80]!r}...",
               "compare with tok.apply_chat_template(messages, tokenize=False); mind the newlines")
        want_prompt = tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
        expect(got_prompt == want_prompt,
               "with add_generation_prompt=True the text should end with the assistant's header",
               "append '<|im_start|>assistant' and a newline, and nothing else")
    return f"{len(cases)} conversations render exactly as the template does"


@checker("13.2", "assistant-only label mask", answer="assistant_labels")
def probe_assistant_labels(assistant_labels) -> list:
    expect_callable(assistant_labels, "assistant_labels")
    tok = _tokenizer()
    out = []
    for msgs in _cases():
        ids, _ = trl_assistant_labels(msgs, tok)
        got = assistant_labels(list(ids), tok)
        expect(isinstance(got, list) and len(got) == len(ids),
               f"expected a list of {len(ids)} labels, one per input id", "return a list as long as input_ids")
        out.append([int(x) for x in got])
    return out


@judge("13.2")
def judge_assistant_labels(outputs: list) -> str:
    cases = _cases()
    expect(isinstance(outputs, list) and len(outputs) == len(cases), "your function gave no labels per conversation")
    tok = _tokenizer()
    end = tok.convert_tokens_to_ids("<|im_end|>")
    for msgs, got in zip(cases, outputs):
        ids, want = trl_assistant_labels(msgs, tok)
        expect(isinstance(got, list) and len(got) == len(ids) and all(isinstance(x, int) for x in got),
               f"expected a list of {len(ids)} integer labels, one per input id")
        expect(any(x != -100 for x in got), "every label is -100: the model would learn nothing")
        expect(any(x == -100 for x in got), "no label is -100: the loss would include the prompt",
               "set the labels of system and user turns (and the headers) to -100")
        expect(all(g in (-100, t) for g, t in zip(got, ids)), "a kept label differs from its input id",
               "a kept position keeps its own token id (the trainer shifts by one itself)")
        kept_ends = sum(1 for g in got if g == end)
        n_turns = sum(m["role"] == "assistant" for m in msgs)
        expect(kept_ends == n_turns, f"{kept_ends} of {n_turns} assistant turns keep their <|im_end|>",
               "the end-of-turn token is what teaches the model to stop: keep it in every assistant turn")
        expect(got == list(want), f"your mask differs from TRL's on a {n_turns}-turn chat",
               "keep everything after '<|im_start|>assistant' up to and including '<|im_end|>' and the "
               "newline after it, in every assistant turn; mask the rest")
    return f"{len(cases)} conversations masked exactly as SFTTrainer(assistant_only_loss=True) does"
