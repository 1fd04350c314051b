"""course_utils.text.qa's SQuAD v1.1 EM/F1 against the official script's functions, case by case."""

from __future__ import annotations

import random
import string

import pytest

from course_utils.text import qa
import squad_v1_official as official

WORDS = ["the", "a", "an", "The", "A", "An", "Porto", "porto", "city", "of", "in", "1987", "1,987",
         "U.S.", "rock'n'roll", "théâtre", "Théâtre", "and", "anthem", "theory", "Ana", "x"]
PIECES = [" ", "  ", "\t", "\n", ".", ",", "!", "?", "-", "'", '"', "(", ")", "$", "%", "…", "—", ""]


def _text(rng: random.Random) -> str:
    out = []
    for _ in range(rng.randint(0, 6)):
        out.append(rng.choice(WORDS) if rng.random() < 0.7 else rng.choice(PIECES))
        out.append(rng.choice([" ", " ", "", "  ", "-", rng.choice(string.punctuation)]))
    return "".join(out)


CASES = [(_text(random.Random(i)), _text(random.Random(10_000 + i))) for i in range(3000)]
EDGE = [("", ""), ("the", "a"), ("...", ""), ("the", "the"), ("", "porto"), ("porto", ""),
        ("an apple", "apple"), ("anthem", "an them"), ("Porto porto", "porto"), ("the the", "a"),
        ("théâtre", "THÉÂTRE"), ("1,987", "1987"), ("U.S.", "us"), ("a\tb\nc", "a b c")]


def test_generated_cases_cover_the_tricky_ones():
    both_empty = sum(1 for p, t in CASES if not official.normalize_answer(p) and not official.normalize_answer(t))
    partial = sum(1 for p, t in CASES if 0 < official.f1_score(p, t) < 1)
    assert both_empty >= 20 and partial >= 100, (both_empty, partial)


@pytest.mark.parametrize("cases", [EDGE, CASES], ids=["edge", "generated"])
def test_normalisation_em_and_f1_match_the_official_script(cases):
    for pred, truth in cases:
        assert qa.normalize_answer(pred) == official.normalize_answer(pred), pred
        assert qa.exact_match(pred, truth) == float(official.exact_match_score(pred, truth)), (pred, truth)
        assert qa.f1(pred, truth) == pytest.approx(official.f1_score(pred, truth), abs=1e-12), (pred, truth)


def test_both_empty_after_normalisation_is_em_1_f1_0_as_in_v1_1():
    assert official.f1_score("the", "a.") == 0 and official.exact_match_score("the", "a.")
    assert qa.f1("the", "a.") == 0.0 and qa.exact_match("the", "a.") == 1.0


def test_corpus_scores_match_the_official_loop():
    rng = random.Random(7)
    examples, predictions = [], {}
    for i in range(400):
        truths = [_text(rng) for _ in range(rng.randint(1, 3))]
        examples.append({"id": f"q{i}", "answers": {"text": truths, "answer_start": [0] * len(truths)}})
        if rng.random() < 0.9:  # some questions stay unanswered: they score 0
            predictions[f"q{i}"] = rng.choice(truths) if rng.random() < 0.3 else _text(rng)
    want = official.evaluate([(e["id"], e["answers"]["text"]) for e in examples], predictions)
    got = qa.squad_metrics(predictions, examples)
    assert got["exact_match"] == pytest.approx(want["exact_match"], abs=1e-9)
    assert got["f1"] == pytest.approx(want["f1"], abs=1e-9)


def test_unanswered_question_scores_zero_even_if_its_reference_normalises_to_nothing():
    examples = [{"id": "a", "answers": {"text": ["the"]}}]
    assert qa.squad_metrics({}, examples) == {"exact_match": 0.0, "f1": 0.0}
    assert qa.squad_metrics({"a": ""}, examples) == {"exact_match": 100.0, "f1": 0.0}
    with pytest.raises(ValueError):
        qa.squad_metrics({}, [])
