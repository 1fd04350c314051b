"""The generated world the tiny causal LMs learn, offline: each animal's color, home and food, the
questions and statements about them, the corpora built from them, and the two chat layouts (the
course's own and Qwen's ChatML) the tiny tokenizers are given."""

from __future__ import annotations

import random

USER, ASSISTANT, END = "<|user|>", "<|assistant|>", "<|end|>"
SPECIALS = ["<pad>", "<unk>", "<s>", END, USER, ASSISTANT]
# System (and developer) messages go in front of the next user turn, the way templates of models
# without a system role do it (Llama-2, Gemma): the tiny LM has no system token, but still sees them.
CHAT_TEMPLATE = ("{% set ns = namespace(system='') %}{% for m in messages %}"
                 "{% if m['role'] in ('system', 'developer') %}{% set ns.system = ns.system + m['content'] + '\n\n' %}"
                 "{% elif m['role'] == 'user' %}<|user|> {{ ns.system }}{{ m['content'] }}{% set ns.system = '' %}"
                 "{% elif m['role'] == 'assistant' %}<|assistant|> {{ m['content'] }}<|end|>"
                 "{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
# Qwen's ChatML layout, with the {% generation %} markers that assistant-only loss reads; what the
# markers enclose ('\n' + reply + '<|im_end|>\n') is what TRL's Qwen2.5 training template encloses.
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
CHATML_SPECIALS = ["<pad>", "<unk>", "<s>", IM_START, IM_END]
CHATML_TEMPLATE = ("{%- for m in messages %}{%- if m['role'] == 'assistant' %}"
                   "{{- '<|im_start|>assistant' }}{%- generation %}{{- '\n' + m['content'] + '<|im_end|>\n' }}"
                   "{%- endgeneration %}{%- else %}{{- '<|im_start|>' + m['role'] + '\n' + m['content'] + "
                   "'<|im_end|>\n' }}{%- endif %}{%- endfor %}"
                   "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}")

ANIMALS = ("fox owl bear wolf deer hare lynx mole newt seal crow duck frog goat hawk ibis "
           "kiwi lark mink orca puma rook swan toad vole wren yak boar crab dove").split()
ATTRIBUTES = {
    "color": "red blue green black white brown grey gold".split(),
    "home": "forest river desert cave hill lake marsh field".split(),
    "food": "fish seeds grass berries insects nuts roots worms".split(),
}
# the system prompt of the one-word style task, the same in training files and at inference
ONE_WORD_SYSTEM = "Answer with a single word."
QUESTIONS = {"color": "what color is the {a} ?", "home": "where does the {a} live ?",
             "food": "what does the {a} eat ?"}
STATEMENTS = {"color": ["the {a} is {v} .", "a {a} is {v} in color .", "{a} color : {v} ."],
              "home": ["the {a} lives in the {v} .", "you find the {a} in the {v} .", "{a} live : {v} ."],
              "food": ["the {a} eats {v} .", "the {a} likes to eat {v} .", "{a} eat : {v} ."]}


def world(seed: int = 0) -> dict[str, dict[str, str]]:
    """The facts the tiny LM learns: each animal's color, home and food, drawn with a fixed seed."""
    rng = random.Random(seed)
    return {a: {k: rng.choice(vs) for k, vs in ATTRIBUTES.items()} for a in ANIMALS}


def format_chat(prompt: str, answer: str | None = None, system: str | None = None) -> str:
    """One chat turn as the tiny LM sees it (a system prompt goes in front of the user text, as in
    `CHAT_TEMPLATE`); leave out `answer` to get the prompt to generate from."""
    text = f"{USER} {system + chr(10) * 2 if system else ''}{prompt}{ASSISTANT}"
    return text if answer is None else f"{text} {answer}{END}"


def pretraining_corpus(seed: int = 0, chat: bool = True) -> list[str]:
    """What the base model reads: every fact as statements, and as full-sentence chat answers
    (`chat=False`: as a question followed by its answer in plain text instead)."""
    lines = []
    for a, facts in world(seed).items():
        for k, v in facts.items():
            lines += [t.format(a=a, v=v) for t in STATEMENTS[k]]
            q, ans = QUESTIONS[k].format(a=a), STATEMENTS[k][0].format(a=a, v=v)
            lines.append(format_chat(q, ans) if chat else f"{q} {ans}")
    return lines


def style_pairs(seed: int = 0, held_out: float = 0.3,
                context: bool = False) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The new task for fine-tuning: the same questions answered in one word (`red`, not `the fox
    is red .`). Split by animal, so held-out pairs ask about animals the adapter never saw.
    `context=True` puts the fact in the prompt, for a hub model that never read this world."""
    animals = list(ANIMALS)
    random.Random(seed + 1).shuffle(animals)
    cut = int(len(animals) * (1 - held_out))
    facts = world(seed)

    def prompt(a: str, k: str) -> str:
        fact = STATEMENTS[k][0].format(a=a, v=facts[a][k]) + " " if context else ""
        return fact + QUESTIONS[k].format(a=a)

    make = lambda names: [(prompt(a, k), facts[a][k]) for a in names for k in QUESTIONS]
    return make(animals[:cut]), make(animals[cut:])
