"""Checks for lesson 13 (instruction tuning): render a conversation in ChatML, build the
assistant-only label mask. Both compare with what the tokenizer's template and TRL produce."""

from __future__ import annotations

from functools import lru_cache

from ..checks import checker, expect, expect_callable
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


@checker("13.1", "render a conversation in ChatML")
def check_format_chat(format_chat) -> str:
    expect_callable(format_chat, "format_chat")
    tok = _tokenizer()
    for msgs in _cases():
        want = tok.apply_chat_template(msgs, tokenize=False)
        got = format_chat(msgs)
        expect(isinstance(got, str), f"expected a string, got {type(got).__name__}")
        expect("<|im_start|>" in got and "<|im_end|>" in got, "no <|im_start|> / <|im_end|> markers in your text",
               "each message is '<|im_start|>' + role + newline + content + '<|im_end|>' + newline")
        expect(got == want, f"differs from the template for a {len(msgs)}-message chat: got {got[:80]!r}...",
               "compare with tok.apply_chat_template(messages, tokenize=False); mind the newlines")
        prompt = msgs[:-1]
        want_prompt = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        expect(format_chat(prompt, add_generation_prompt=True) == want_prompt,
               "with add_generation_prompt=True the text should end with the assistant's header",
               "append '<|im_start|>assistant' and a newline, and nothing else")
    return f"{len(_cases())} conversations render exactly as the template does"


@checker("13.2", "assistant-only label mask")
def check_assistant_labels(assistant_labels) -> str:
    expect_callable(assistant_labels, "assistant_labels")
    tok = _tokenizer()
    end = tok.convert_tokens_to_ids("<|im_end|>")
    for msgs in _cases():
        ids, want = trl_assistant_labels(msgs, tok)
        got = assistant_labels(list(ids), tok)
        expect(isinstance(got, list) and len(got) == len(ids),
               f"expected a list of {len(ids)} labels, one per input id", "return a list as long as input_ids")
        got = [int(x) for x in got]
        expect(any(x != -100 for x in got), "every label is -100: the model would learn nothing")
        expect(any(x == -100 for x in got), "no label is -100: the loss would include the prompt",
               "set the labels of system and user turns (and the headers) to -100")
        expect(all(g in (-100, t) for g, t in zip(got, ids)), "a kept label differs from its input id",
               "a kept position keeps its own token id (the trainer shifts by one itself)")
        kept_ends = sum(1 for g in got if g == end)
        n_turns = sum(m["role"] == "assistant" for m in msgs)
        expect(kept_ends == n_turns, f"{kept_ends} of {n_turns} assistant turns keep their <|im_end|>",
               "the end-of-turn token is what teaches the model to stop: keep it in every assistant turn")
        expect(got == want, f"your mask differs from TRL's on a {n_turns}-turn chat",
               "keep everything after '<|im_start|>assistant' up to and including '<|im_end|>' and the "
               "newline after it, in every assistant turn; mask the rest")
    return f"{len(_cases())} conversations masked exactly as SFTTrainer(assistant_only_loss=True) does"
