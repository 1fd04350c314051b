"""Question answering: span labels round-trip to the answer text, windows, decoding, SQuAD metrics.

That the recipe learns (EM and F1 up 20+ points) is asserted where it is taught: a claim in
lesson 06, which tests/test_grading_lessons.py executes."""

import numpy as np
import pytest

from course_utils.text import qa
from course_utils.checks import evaluate
from course_utils.text.models import load_tokenizer, minilm_path


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(minilm_path()))


def _features(tokenizer, examples, max_length, stride):
    batch = {k: [e[k] for e in examples] for k in ("question", "context", "answers")}
    enc = tokenizer(batch["question"], batch["context"], truncation="only_second", max_length=max_length,
                    stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    return qa.prepare_train_features(tokenizer, batch, max_length, stride), enc


@pytest.mark.parametrize("max_length,stride", [(32, 8), (40, 12), (48, 16), (384, 128)])
def test_labels_round_trip_to_answer_text(tokenizer, max_length, stride):
    train, _ = qa.generated_qa(n_train=120, n_test=0, n_people=3, seed=1)
    features, enc = _features(tokenizer, train, max_length, stride)
    samples = enc["overflow_to_sample_mapping"]
    found = set()
    for i, (s, e) in enumerate(zip(features["start_positions"], features["end_positions"])):
        example = train[samples[i]]
        answer = example["answers"]["text"][0]
        start = example["answers"]["answer_start"][0]
        offsets = enc["offset_mapping"][i]
        context_tokens = [k for k, sid in enumerate(enc.sequence_ids(i)) if sid == 1]
        inside = offsets[context_tokens[0]][0] <= start and offsets[context_tokens[-1]][1] >= start + len(answer)
        if s == 0:
            assert e == 0 and not inside, "a window that holds the answer was labelled CLS"
            continue
        assert enc.sequence_ids(i)[s] == 1 and enc.sequence_ids(i)[e] == 1
        assert example["context"][offsets[s][0]:offsets[e][1]] == answer
        found.add(samples[i])
    assert found == set(range(len(train))), "some answer was in no window at all"


def test_answer_at_window_edges(tokenizer):
    # the answer is the very last context token of the first window, and first/last of the context
    context = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho"
    question = "which?"
    words = context.split()
    for target in (words[0], words[-1], words[7], words[8]):
        start = context.index(target)
        ex = {"question": question, "context": context, "answers": {"text": [target], "answer_start": [start]}}
        features, enc = _features(tokenizer, [ex], 16, 4)
        hits = [(i, s, e) for i, (s, e) in enumerate(zip(features["start_positions"], features["end_positions"])) if s]
        assert hits, f"{target} found in no window"
        for i, s, e in hits:
            offsets = enc["offset_mapping"][i]
            assert context[offsets[s][0]:offsets[e][1]] == target


def test_truncated_answer_points_at_cls():
    offsets = [(0, 0), (0, 3), (0, 0), (0, 4), (5, 9), (0, 0)]
    seq = [None, 0, None, 1, 1, None]
    assert qa.answer_token_span(offsets, seq, 5, 9) == (4, 4)
    assert qa.answer_token_span(offsets, seq, 5, 14) == (0, 0)  # runs past the window
    assert qa.answer_token_span(offsets, seq, 0, 3) == (3, 3)


def test_best_answers_stays_in_context_and_respects_length():
    example = {"id": "x", "context": "Ada was born in Porto .", "answers": {"text": ["Porto"], "answer_start": [16]}}
    offsets = [None, None, None, (0, 3), (4, 7), (8, 12), (13, 15), (16, 21), (22, 23), None]
    features = {"example_id": ["x"], "offset_mapping": [offsets]}
    start = np.full((1, 10), -5.0)
    end = np.full((1, 10), -5.0)
    start[0, 1] = end[0, 1] = 10.0  # best scores sit on a question token: must be ignored
    start[0, 7], end[0, 7] = 3.0, 2.0
    start[0, 3], end[0, 3] = 2.5, -1.0
    answers = qa.best_answers([example], features, start, end, n_best=5, max_answer_length=30)
    assert answers == {"x": "Porto"}
    start[0, 3], end[0, 8] = 4.0, 4.0  # a long span from token 3 to 8 wins unless length is capped
    assert qa.best_answers([example], features, start, end, max_answer_length=30)["x"] == "Ada was born in Porto ."
    assert qa.best_answers([example], features, start, end, max_answer_length=1)["x"] == "Porto"


@pytest.mark.parametrize("pred,truth,em,f1", [
    ("Porto", "Porto", 1, 1), ("the Porto!", "porto", 1, 1), ("in Porto city", "Porto", 0, 0.5),
    ("Lisbon", "Porto", 0, 0), ("a cat sat", "the cat sat down", 0, 0.8), ("", "", 1, 0), ("the", "a.", 1, 0), ("x", "", 0, 0)])
def test_em_and_f1_known_cases(pred, truth, em, f1):
    assert qa.exact_match(pred, truth) == em
    assert qa.f1(pred, truth) == pytest.approx(f1)


def test_squad_metrics_take_best_reference():
    examples = [{"id": "a", "answers": {"text": ["Porto", "the city of Porto"]}},
                {"id": "b", "answers": {"text": ["1987"]}}]
    assert qa.squad_metrics({"a": "city of Porto", "b": "1986"}, examples) == {"exact_match": 50.0, "f1": 50.0}


def test_generated_answers_sit_in_context():
    train, test = qa.generated_qa(50, 10)
    for ex in train + test:
        s = ex["answers"]["answer_start"][0]
        assert ex["context"][s:s + len(ex["answers"]["text"][0])] == ex["answers"]["text"][0]
    assert {e["id"] for e in train}.isdisjoint(e["id"] for e in test)


def test_checkers_reject_classic_mistakes():
    def off_by_one(offsets, seq, s, e):
        a, b = qa.answer_token_span(offsets, seq, s, e)
        return a, b + 1 if a else b

    def no_cls(offsets, seq, s, e):
        context = [i for i, sid in enumerate(seq) if sid == 1]
        start = next((i for i in context if offsets[i][1] > s), context[-1])
        end = max((i for i in context if offsets[i][0] < e), default=context[0])
        return start, end

    def uses_question(offsets, seq, s, e):
        start = next(i for i, o in enumerate(offsets) if o[1] > s and seq[i] is not None)
        end = max(i for i, o in enumerate(offsets) if o[0] < e and seq[i] is not None)
        return start, end

    assert evaluate("06.1", qa.answer_token_span).passed
    for wrong in (off_by_one, no_cls, uses_question):
        assert evaluate("06.1", wrong).status == "failed", wrong.__name__
    assert evaluate("06.2", qa.f1).passed
    set_f1 = lambda p, t: qa.f1(" ".join(dict.fromkeys(p.split())), t)  # noqa: E731
    raw_f1 = lambda p, t: qa.f1(p.lower(), t.lower()) if p.strip(".") == p else 0.0  # noqa: E731
    for wrong in (set_f1, raw_f1, qa.exact_match):
        assert evaluate("06.2", wrong).status == "failed"
