"""Chat data for instruction tuning: questions about the tiny LM's generated world as conversations
(single- and multi-turn, split by animal so held-out prompts ask about animals fine-tuning never
showed), and the hub chat dataset the `full` profile trains on."""

from __future__ import annotations

import random
from typing import Any

from course_utils.llm.tiny_world import ANIMALS, QUESTIONS, STATEMENTS, world

Messages = list[dict[str, str]]
FILLER = "i hope this helps ."  # what the verbose writer appends to every answer

# `full` profile: a real multi-turn chat set. Schema (dataset card): `source` (str), `messages`
# (list of {"role": "user" | "assistant", "content": str}, alternating, starting with "user"),
# `num_turns` (int); splits `train` (15,806 rows) and `test` (200 rows).
HUB_SFT_DATASET = "trl-lib/Capybara"


def load_hub_sft_dataset(split: str = "train"):
    """The `full` profile's chat SFT data from the hub (through `course_utils.hub`, so the
    rehearsal can replace it with a stand-in)."""
    from course_utils.hub import load_dataset

    return load_dataset(HUB_SFT_DATASET)[split]


def split_animals(seed: int = 0, held_out: float = 0.3) -> tuple[list[str], list[str]]:
    """(fine-tuning animals, held-out animals): judged prompts only ask about the second group."""
    animals = list(ANIMALS)
    random.Random(seed + 1).shuffle(animals)
    cut = int(len(animals) * (1 - held_out))
    return animals[:cut], animals[cut:]


def answer(animal: str, attribute: str, style: str = "sentence", seed: int = 0) -> str:
    """The reply to one question: `sentence` names the animal ("the fox is red ."), `verbose` adds
    a filler sentence ("... i hope this helps ."), `terse` is the bare value ("red ."), `wrong` is a
    fluent sentence with another animal's value."""
    facts = world(seed)
    value = facts[animal][attribute]
    if style == "terse":
        return f"{value} ."
    if style == "verbose":
        return STATEMENTS[attribute][0].format(a=animal, v=value) + " " + FILLER
    if style == "wrong":
        others = sorted({f[attribute] for f in facts.values()} - {value})
        value = random.Random(f"{animal}{attribute}{seed}").choice(others)
    elif style != "sentence":
        raise ValueError(f"unknown answer style {style!r}: use 'sentence', 'verbose', 'terse' or 'wrong'")
    return STATEMENTS[attribute][0].format(a=animal, v=value)


def question(animal: str, attribute: str) -> str:
    """The user's question about one fact, e.g. "what color is the fox ?"."""
    return QUESTIONS[attribute].format(a=animal)


def qa_prompts(animals: list[str]) -> list[tuple[str, str, str]]:
    """(animal, attribute, question) for every fact of `animals`: the prompts a lesson judges."""
    return [(a, k, question(a, k)) for a in animals for k in QUESTIONS]


def facts_message(animal: str, seed: int = 0) -> dict[str, str]:
    """A system message stating an animal's facts, for a hub model that never read this world."""
    facts = world(seed)[animal]
    return {"role": "system", "content": " ".join(STATEMENTS[k][0].format(a=animal, v=v) for k, v in facts.items())}


def prompt_messages(animal: str, attribute: str, context: bool = False) -> Messages:
    """The messages a judged prompt sends: the question, after the facts when `context=True`."""
    return ([facts_message(animal)] if context else []) + [{"role": "user", "content": question(animal, attribute)}]


def conversations(animals: list[str], max_turns: int = 3, seed: int = 0,
                  style: str | dict[str, str] = "sentence", context: bool = False) -> list[dict[str, Any]]:
    """SFT examples `{"messages": [...]}`: every fact of `animals` once as a single turn, plus
    multi-turn chats of 2..`max_turns` questions about one animal, so lengths vary the way real
    chat data does. `style` may map animal -> style; `context=True` states the facts first."""
    rng = random.Random(seed)
    pick = (lambda a: style) if isinstance(style, str) else (lambda a: style[a])
    out = []
    for a in animals:
        for k in QUESTIONS:
            out.append({"messages": prompt_messages(a, k, context)
                        + [{"role": "assistant", "content": answer(a, k, pick(a), seed)}]})
    for a in animals:
        for turns in range(2, max_turns + 1):
            keys = rng.sample(list(QUESTIONS), turns)
            msgs: Messages = [facts_message(a, seed)] if context else []
            for k in keys:
                msgs += [{"role": "user", "content": question(a, k)},
                         {"role": "assistant", "content": answer(a, k, pick(a), seed)}]
            out.append({"messages": msgs})
    rng.shuffle(out)
    return out


def lesson_data(profile: str, seed: int = 0) -> dict[str, Any]:
    """Everything the instruction-tuning lesson trains and judges on, per profile: training chats,
    held-out chats and prompts (animals fine-tuning never showed), their references, and the
    general text whose loss measures forgetting (`tiny`: the pretraining corpus; `full`: held-out
    hub chats). `full` states the facts in a system message, since Qwen never read this world, and
    adds hub chats to the training mix."""
    from course_utils.llm.tiny_world import pretraining_corpus

    context = profile == "full"
    train_animals, test_animals = split_animals(seed)
    prompts = qa_prompts(test_animals)
    out = {"train": conversations(train_animals, seed=seed, context=context),
           "heldout": conversations(test_animals, seed=seed, context=context, max_turns=1),
           "prompts": prompts,
           "messages": [prompt_messages(a, k, context) for a, k, _ in prompts],
           "references": [answer(a, k, "sentence", seed) for a, k, _ in prompts],
           "facts": world(seed)}
    if profile == "full":
        hub = load_hub_sft_dataset("train")
        hub = hub.select(range(min(400, len(hub))))
        out["train"] += [{"messages": m} for m in hub["messages"]]
        random.Random(seed).shuffle(out["train"])
        general = load_hub_sft_dataset("test")
        out["general"] = [{"messages": m} for m in general.select(range(min(50, len(general))))["messages"]]
    else:
        out["general"] = pretraining_corpus(seed, chat=False)
    return out
