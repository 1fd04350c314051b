"""Generated English for the stand-ins: movie reviews, news-like sentences with entities, and
question/context pairs. Deterministic (seeded), so a rehearsal prints the same rows every run."""

from __future__ import annotations

import random

POSITIVE = "wonderful moving brilliant charming superb gripping delightful touching".split()
NEGATIVE = "dull boring clumsy tedious awful predictable lifeless messy".split()
NOUNS = "film story plot cast ending script score camera pacing dialogue".split()
FIRST = "Anna Omar Grace Ivan Lena Pedro Yuki Tariq Mara Felix".split()
LAST = "Holm Okafor Novak Silva Tanaka Berg Moreau Kowalski Reyes Lindqvist".split()
ORGS = [("Redwater", "Systems"), ("Blue", "Harbor"), ("Norda", "Bank"), ("Atlas", "Motors")]
CITIES = "Riga Porto Lagos Quito Oslo Hanoi Tunis Perth".split()
EVENTS = "Olympics Pulitzer Eurovision Oscars".split()
VERBS = "visited joined left praised met".split()


def review(rng: random.Random, positive: bool) -> str:
    """One short movie review whose adjectives carry its sentiment."""
    words = POSITIVE if positive else NEGATIVE
    parts = [f"The {rng.choice(NOUNS)} was {rng.choice(words)}." for _ in range(rng.randint(2, 4))]
    if rng.random() < 0.3:
        parts.append("<br /><br />" + f"Overall a {rng.choice(words)} {rng.choice(NOUNS)}.")
    return " ".join(parts)


def tagged_sentence(rng: random.Random) -> list[tuple[str, str, str, str]]:
    """(token, pos, chunk, ner) rows of one sentence in CoNLL-2003's tag sets."""
    person = [(rng.choice(FIRST), "NNP", "B-NP", "B-PER"), (rng.choice(LAST), "NNP", "I-NP", "I-PER")]
    org = rng.choice(ORGS)
    rows = person + [(rng.choice(VERBS), "VBD", "B-VP", "O"),
                     (org[0], "NNP", "B-NP", "B-ORG"), (org[1], "NNP", "I-NP", "I-ORG"),
                     ("in", "IN", "B-PP", "O"), (rng.choice(CITIES), "NNP", "B-NP", "B-LOC")]
    if rng.random() < 0.5:
        rows += [("after", "IN", "B-PP", "O"), ("the", "DT", "B-NP", "O"),
                 (rng.choice(EVENTS), "NNPS", "I-NP", "B-MISC")]
    return rows + [(".", ".", "O", "O")]


def qa_example(rng: random.Random) -> tuple[str, str, str, str]:
    """(title, context, question, answer) where the answer is a span of the context."""
    name, city = f"{rng.choice(FIRST)} {rng.choice(LAST)}", rng.choice(CITIES)
    org = " ".join(rng.choice(ORGS))
    year = str(rng.randint(1950, 2020))
    context = (f"{name} was born in {city} in {year}. Later {name.split()[0]} worked for {org}, "
               f"which is known for its {rng.choice(NOUNS)}.")
    question, answer = rng.choice([(f"Where was {name} born?", city),
                                   (f"In which year was {name} born?", year),
                                   (f"Who did {name.split()[0]} work for?", org)])
    return name, context, question, answer


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    """Mixed sentences for building the stand-in tokenizers' vocabularies."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        lines.append(review(rng, i % 2 == 0))
        lines.append(" ".join(t for t, *_ in tagged_sentence(rng)))
        lines.append(" ".join(qa_example(rng)[1:]))
    return lines
