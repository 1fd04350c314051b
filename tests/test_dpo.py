"""Preference tuning: the DPO loss by hand equals TRL's, pairs from rankings, OpenAI's preference
JSONL validated line by line, and `dpo_train` (the call the fine-tuning service makes) really moves
the implicit reward toward the preferred answers, also on prompts it never trained on."""

import json
import math

import pytest

from course_utils.checks import evaluate
from course_utils.claims import claim
from course_utils.exercises.ex14 import _scored_pairs, _trl_losses
from course_utils.llm import causal_lm as clm
from course_utils.llm import dpo
from course_utils.llm import instruct_data as data
from course_utils.llm import preference_data as prefs


def test_reference_loss_equals_trl_on_random_logps():
    for (pc, pr, rc, rr, beta), trl_loss in zip(_scored_pairs(), _trl_losses(), strict=True):
        assert dpo.dpo_loss(pc, pr, rc, rr, beta) == pytest.approx(trl_loss, rel=1e-3, abs=1e-4)
    assert dpo.dpo_loss(-3, -3, -5, -5, 0.1) == pytest.approx(math.log(2))


def test_loss_checker_accepts_variants_and_rejects_mistakes():
    assert evaluate("14.2", dpo.dpo_loss).passed
    stable = lambda pc, pr, rc, rr, b: math.log1p(math.exp(-b * ((pc - rc) - (pr - rr))))
    assert evaluate("14.2", stable).passed
    sig = lambda z: 1 / (1 + math.exp(-z))
    wrong = [lambda pc, pr, rc, rr, b: -math.log(sig((pc - rc) - (pr - rr))),  # no beta
             lambda pc, pr, rc, rr, b: -math.log(sig(b * ((pr - rr) - (pc - rc)))),  # chosen/rejected swapped
             lambda pc, pr, rc, rr, b: -math.log(sig(b * (pc - pr))),  # no reference
             lambda pc, pr, rc, rr, b: sig(-b * ((pc - rc) - (pr - rr)))]  # sigmoid, not log-sigmoid
    for fn in wrong:
        assert evaluate("14.2", fn).status == "failed"


def test_pair_checker_accepts_reference_and_rejects_mistakes():
    assert evaluate("14.1", prefs.pairs_from_ranking).passed
    best_vs_rest = lambda ans: [(max(ans, key=lambda a: a[1])[0], t) for t, s in ans if s < max(x[1] for x in ans)]
    keeps_ties = lambda ans: [(a, b) for i, (a, sa) in enumerate(ans) for b, sb in ans[i + 1:] if a != b]
    reversed_ = lambda ans: [(b, a) for a, b in prefs.pairs_from_ranking(ans)]
    for fn in (best_vs_rest, keeps_ties, reversed_):
        assert evaluate("14.1", fn).status == "failed"


def test_pairs_from_ranking():
    assert prefs.pairs_from_ranking([("b", 0.2), ("a", 0.9), ("c", 0.2)]) == [("a", "b"), ("a", "c")]
    assert prefs.pairs_from_ranking([("x", 0.1), ("x", 0.8), ("y", 0.5)]) == [("x", "y")]
    ranked = prefs.ranked_answers(["fox"])
    assert len(ranked) == 3 and [s for _, s in ranked[0]["answers"]] == sorted([s for _, s in ranked[0]["answers"]], reverse=True)
    rows = prefs.preference_rows(ranked)
    assert len(rows) == 9 and rows[0]["chosen"][0]["content"] == data.answer("fox", "color")
    assert rows[0]["rejected"][0]["content"] == data.answer("fox", "color", "terse")


def _write(tmp_path, lines):
    path = tmp_path / "prefs.jsonl"
    path.write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n")
    return path


def test_preference_validator_accepts_good_file_and_names_each_problem(tmp_path):
    good = [prefs.to_openai(r) for r in prefs.preference_rows(prefs.ranked_answers(["fox", "owl"]))]
    report = prefs.validate_preference_jsonl(_write(tmp_path, good))
    assert report.ok, report.summary()
    assert prefs.from_openai(good[0]) == prefs.preference_rows(prefs.ranked_answers(["fox"]))[0]
    base = good[0]
    bad = ["{not json", [1, 2],
           {**base, "extra": 1},
           {k: v for k, v in base.items() if k != "input"},
           {**base, "input": {"messages": []}},
           {**base, "input": {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}},
           {**base, "preferred_output": "text"},
           {**base, "non_preferred_output": [{"role": "user", "content": "x"}]},
           {**base, "non_preferred_output": base["preferred_output"]},
           {**base, "input": {"messages": [{"role": "wizard", "content": "q"}]}}]
    report = prefs.validate_preference_jsonl(_write(tmp_path, good + bad + [good[1]]))
    kinds: dict = {}
    for p in report.errors:
        kinds.setdefault(p.line, set()).add(p.kind)
    n = len(good)
    expected = ["invalid_json", "not_an_object", "unknown_key", "missing_input", "missing_messages",
                "last_input_not_user", "bad_output", "bad_output", "identical_outputs", "unknown_role"]
    for offset, kind in enumerate(expected, start=n + 1):
        assert kind in kinds.get(offset, set()), (offset, kind, report.summary())
    assert kinds[n + len(bad) + 1] == {"duplicate_example"}
    assert set(kinds) == set(range(n + 1, n + len(bad) + 2))  # the good lines have no error
    few = prefs.validate_preference_jsonl(_write(tmp_path, good[:3]))
    assert [p.kind for p in few.errors] == ["too_few_examples"]


def test_dpo_train_moves_held_out_rewards_toward_the_preferred_answers(course_seed):
    model, tok = clm.load_base(clm.INSTRUCT_BASE, progress=False)
    train_animals, test_animals = data.split_animals()
    train_pairs = prefs.preference_rows(prefs.ranked_answers(train_animals))
    test_pairs = prefs.preference_rows(prefs.ranked_answers(test_animals))
    ref, _ = clm.load_base(clm.INSTRUCT_BASE, progress=False)
    tuned, history = dpo.dpo_train(model, tok, train_pairs, beta=0.5, n_epochs=3, learning_rate=2e-3, batch_size=16,
                                   seed=course_seed)
    curves = dpo.reward_curves(history)
    assert curves["rewards/margins"][0] == 0
    late = sum(curves["rewards/margins"][-5:]) / 5
    claim("test: dpo_train, the training reward margin grows above 0.1", late > 0.1, last5_mean=late)
    held = dpo.reward_accuracy(tuned, ref, tok, test_pairs[:30], beta=0.5)
    # chance is 0.5; margins: benchmarks/claims_sweep.py --tests (docs/results.md)
    claim("test: dpo_train, held-out reward accuracy 0.6 or more with a positive margin",
          held["accuracy"] >= 0.6 and held["margin"] > 0, accuracy=held["accuracy"], margin=held["margin"])
    with pytest.raises(ValueError):
        dpo.dpo_train(model, tok, [], beta=0.1)
