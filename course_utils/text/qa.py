"""Extractive question answering: generated data, windowed preprocessing, answer decoding, SQuAD metrics.

Lesson 06 uses these. Long contexts are split into overlapping windows (`stride`); a window that
does not contain the whole answer is labelled with the CLS token, never with wrong positions.
"""

from __future__ import annotations

import collections
import random
import re
import string
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

_PUNCTUATION = frozenset(string.punctuation)

FIRST = ["Maren", "Tobias", "Ayla", "Kwame", "Lena", "Rafael", "Sofia", "Idris", "Nora", "Emil",
         "Zara", "Hugo", "Mina", "Pavel", "Greta", "Omar", "Ingrid", "Felix", "Leila", "Bruno"]
LAST = ["Okafor", "Lindgren", "Castillo", "Nakamura", "Brandt", "Moreau", "Quinn", "Petrova",
        "Achebe", "Holloway", "Esposito", "Varga", "Sato", "Dubois", "Keller", "Rahman"]
CITIES = ["Gdansk", "Porto", "Nairobi", "Osaka", "Valparaiso", "Tromso", "Leeds", "Marrakesh",
          "Brisbane", "Ljubljana", "Cork", "Montevideo", "Hanoi", "Tbilisi", "Halifax", "Bergen"]
ORGS = ["Northwind Analytics", "Bluefin Robotics", "Vantage Mills", "Crestline Bank", "Meridian Rail",
        "Atlas Freight", "Juniper Labs", "Orchid Pharmaceuticals", "Sunfield Cooperative"]
INSTRUMENTS = ["cello", "violin", "trumpet", "piano", "flute", "drums", "guitar", "harp"]

FACTS = {  # attribute -> (sentence template, question templates)
    "city": ("{name} was born in {value} .", ["Where was {name} born ?", "In which city was {name} born ?"]),
    "org": ("{name} works for {value} .", ["Who does {name} work for ?", "Which company employs {name} ?"]),
    "year": ("{name} moved abroad in {value} .", ["When did {name} move abroad ?", "In what year did {name} move abroad ?"]),
    "instrument": ("{name} plays the {value} .", ["What instrument does {name} play ?", "Which instrument does {name} play ?"]),
}


def _value(kind: str, rng: random.Random) -> str:
    return {"city": lambda: rng.choice(CITIES), "org": lambda: rng.choice(ORGS),
            "year": lambda: str(rng.randint(1950, 2020)), "instrument": lambda: rng.choice(INSTRUMENTS)}[kind]()


def make_example(rng: random.Random, idx: int, n_people: int = 3) -> dict[str, Any]:
    """One SQuAD-format example: a context of facts about several people, a question about one."""
    names = rng.sample([f"{f} {l}" for f in FIRST for l in LAST], n_people)
    sentences, facts = [], []
    for name in names:
        for kind in rng.sample(list(FACTS), 2):
            value = _value(kind, rng)
            facts.append((name, kind, value, len(sentences)))
            sentences.append(FACTS[kind][0].format(name=name, value=value))
    name, kind, value, sentence_no = rng.choice(facts)
    context = " ".join(sentences)
    start = sum(len(s) + 1 for s in sentences[:sentence_no]) + sentences[sentence_no].index(value, len(name))
    assert context[start:start + len(value)] == value
    question = rng.choice(FACTS[kind][1]).format(name=name)
    return {"id": f"gen-{idx}", "question": question, "context": context,
            "answers": {"text": [value], "answer_start": [start]}}


def generated_qa(n_train: int = 400, n_test: int = 80, n_people: int = 2,
                 seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Train and test question/context pairs in SQuAD format, generated for this course."""
    rng = random.Random(seed)
    data = [make_example(rng, i, n_people) for i in range(n_train + n_test)]
    return data[:n_train], data[n_train:]


def squad(train_size: int | None = None, eval_size: int | None = None, seed: int = 0):
    """SQuAD v1.1 from the hub (full profile), optionally a shuffled sample of each split."""
    from course_utils.hub import load_dataset

    raw = load_dataset("rajpurkar/squad")
    if train_size is not None:
        raw["train"] = raw["train"].shuffle(seed=seed).select(range(train_size))
    if eval_size is not None:
        raw["validation"] = raw["validation"].shuffle(seed=seed).select(range(eval_size))
    return raw


def answer_token_span(offsets: list[tuple[int, int]], sequence_ids: list[int | None],
                      start_char: int, end_char: int, cls_index: int = 0) -> tuple[int, int]:
    """Token positions (start, end inclusive) of the answer characters [start_char, end_char) in one
    window; (cls_index, cls_index) when the window does not hold the whole answer."""
    context = [i for i, s in enumerate(sequence_ids) if s == 1]
    first, last = context[0], context[-1]
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return cls_index, cls_index
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1


def prepare_train_features(tokenizer: PreTrainedTokenizerBase, examples: dict[str, list],
                           max_length: int = 384, stride: int = 128,
                           span: Any = None) -> dict[str, list]:
    """`Dataset.map(batched=True)` function: question+context windows with start/end labels.
    `span(offsets, sequence_ids, start_char, end_char)` replaces the course's labeller (lesson 06
    passes the learner's); its (0, 0) for "not in this window" is mapped to the CLS position."""
    questions = [q.strip() for q in examples["question"]]
    enc = tokenizer(questions, examples["context"], truncation="only_second", max_length=max_length,
                    stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                    padding=False)
    sample_map = enc.pop("overflow_to_sample_mapping")
    offsets_all = enc.pop("offset_mapping")
    starts, ends = [], []
    for i, offsets in enumerate(offsets_all):
        answer = examples["answers"][sample_map[i]]
        start_char = answer["answer_start"][0]
        end_char = start_char + len(answer["text"][0])
        cls_index = enc["input_ids"][i].index(tokenizer.cls_token_id)
        if span is None:
            s, e = answer_token_span(offsets, enc.sequence_ids(i), start_char, end_char, cls_index)
        else:
            s, e = (int(v) for v in span(offsets, enc.sequence_ids(i), start_char, end_char))
            s, e = (cls_index, cls_index) if (s, e) == (0, 0) else (s, e)
        starts.append(s)
        ends.append(e)
    enc["start_positions"] = starts
    enc["end_positions"] = ends
    return enc


def prepare_eval_features(tokenizer: PreTrainedTokenizerBase, examples: dict[str, list],
                          max_length: int = 384, stride: int = 128) -> dict[str, list]:
    """Windows for evaluation: keep which example each came from and the context offsets only
    (None elsewhere), so predictions can be mapped back to characters."""
    questions = [q.strip() for q in examples["question"]]
    enc = tokenizer(questions, examples["context"], truncation="only_second", max_length=max_length,
                    stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                    padding=False)
    sample_map = enc.pop("overflow_to_sample_mapping")
    enc["example_id"] = [examples["id"][s] for s in sample_map]
    enc["offset_mapping"] = [[o if enc.sequence_ids(i)[k] == 1 else None for k, o in enumerate(offs)]
                             for i, offs in enumerate(enc["offset_mapping"])]
    return enc


def best_answers(examples: list[dict] | Any, features: Any, start_logits: np.ndarray,
                 end_logits: np.ndarray, n_best: int = 20, max_answer_length: int = 30) -> dict[str, str]:
    """Answer text per example id: for every window, try the n-best starts x ends, keep spans that
    lie inside the context, end after start and are at most max_answer_length tokens long."""
    by_example = collections.defaultdict(list)
    for i, ex_id in enumerate(features["example_id"]):
        by_example[ex_id].append(i)
    answers = {}
    for example in examples:
        best_text, best_score = "", -np.inf
        for i in by_example[example["id"]]:
            offsets = features["offset_mapping"][i]
            starts = np.argsort(start_logits[i])[-1:-n_best - 1:-1]
            ends = np.argsort(end_logits[i])[-1:-n_best - 1:-1]
            for s in starts:
                for e in ends:
                    if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                        continue
                    if e < s or e - s + 1 > max_answer_length:
                        continue
                    score = start_logits[i][s] + end_logits[i][e]
                    if score > best_score:
                        best_score = score
                        best_text = example["context"][offsets[s][0]:offsets[e][1]]
        answers[example["id"]] = best_text
    return answers


def normalize_answer(text: str) -> str:
    """The official SQuAD v1.1 normalisation: lower case, drop punctuation, articles, extra spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    """1.0 when the normalised prediction equals the normalised reference, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1(prediction: str, truth: str) -> float:
    """Token-overlap F1 between normalised prediction and reference (SQuAD's partial credit).

    As in the official v1.1 script, no shared token gives 0, also when both sides normalise to
    nothing (the v2.0 script scores that case 1)."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    same = sum((collections.Counter(pred) & collections.Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions: dict[str, str], examples: list[dict] | Any) -> dict[str, float]:
    """Exact match and F1 in percent, each the max over an example's reference answers; an
    example without a prediction scores 0, as in the official v1.1 script."""
    examples = list(examples)
    if not examples:
        raise ValueError("squad_metrics needs at least one example")
    em = f1_total = 0.0
    for example in examples:
        if example["id"] not in predictions:
            continue
        pred, truths = predictions[example["id"]], example["answers"]["text"]
        em += max(exact_match(pred, t) for t in truths)
        f1_total += max(f1(pred, t) for t in truths)
    n = len(examples)
    return {"exact_match": 100 * em / n, "f1": 100 * f1_total / n}


def to_dataset(examples: list[dict]):
    """A `datasets.Dataset` with SQuAD's columns from a list of example dicts."""
    from datasets import Dataset

    return Dataset.from_list(examples)
