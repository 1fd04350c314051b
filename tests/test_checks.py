import torch
import pytest

from course_utils import checks
from course_utils.checks import FAILED, NOT_ATTEMPTED, PASSED, check, evaluate
from course_utils.text.curves import CurvePoint


def test_unknown_exercise_is_a_clear_error():
    with pytest.raises(KeyError, match="99"):
        evaluate("99.1", None)
    with pytest.raises(KeyError, match="00.9"):
        evaluate("00.9", None)


def test_stub_is_not_attempted():
    def stub(*args):
        raise NotImplementedError

    assert evaluate("00.1", stub).status == NOT_ATTEMPTED


def test_learner_exception_is_a_failure_with_its_message():
    def broken(batch, device):
        return batch["missing"]

    result = evaluate("00.1", broken)
    assert result.status == FAILED and "KeyError" in result.message


def test_passing_a_result_instead_of_a_function_gets_a_hint():
    result = evaluate("00.1", {"a": 1})
    assert result.status == FAILED and "function" in result.message and result.hint


def test_check_prints_a_verdict_outside_jupyter(capsys):
    result = check("00.2", lambda cap: "fp32" if cap is None else ("bf16" if cap >= (8, 0) else "fp16"))
    assert result.passed
    assert "✅ Exercise 00.2: passed" in capsys.readouterr().out


# lesson 00 ------------------------------------------------------------------------------------

def good_to_device(batch, device):
    out = {}
    for key, value in batch.items():
        out[key] = value.to(device) if torch.is_tensor(value) else value
    return out


@pytest.mark.parametrize("wrong, words", [
    (lambda b, d: {k: v.to(d) for k, v in b.items() if torch.is_tensor(v)}, "keep every key"),
    (lambda b, d: {k: v.to(d) if torch.is_tensor(v) else v for k, v in b.items()
                   if k != "labels"}, "keep every key"),
    (lambda b, d: {k: v.float().to(d) if torch.is_tensor(v) else v for k, v in b.items()}, "dtype"),
    (lambda b, d: dict(b), "still on"),
])
def test_to_device_rejects_typical_mistakes(wrong, words):
    result = evaluate("00.1", wrong)
    assert result.status == FAILED and words in result.message


def test_to_device_that_mutates_its_input_fails():
    def in_place(batch, device):
        for key, value in batch.items():
            if torch.is_tensor(value):
                batch[key] = value.to(device)
        return batch

    assert "in place" in evaluate("00.1", in_place).message


def test_to_device_accepts_a_correct_variant():
    assert evaluate("00.1", good_to_device).status == PASSED


@pytest.mark.parametrize("wrong", [
    lambda cap: "bf16" if cap else "fp32",            # T4 would get bf16
    lambda cap: "fp16" if cap else "fp32",            # never bf16
    lambda cap: "bf16" if cap and cap[0] >= 7 else "fp32",
    lambda cap: "fp16" if cap is None else "bf16",
])
def test_precision_rejects_wrong_rules(wrong):
    result = evaluate("00.2", wrong)
    assert result.status == FAILED and "T4" in result.hint


def test_precision_accepts_a_variant():
    def variant(cap):
        if not cap:
            return "fp32"
        major, minor = cap
        return "bf16" if major * 10 + minor >= 80 else "fp16"

    assert evaluate("00.2", variant).status == PASSED


# lesson 01 ------------------------------------------------------------------------------------

def test_majority_baseline_rejects_one_over_classes():
    assert evaluate("01.1", lambda labels: 1 / len(set(labels))).status == FAILED
    assert evaluate("01.1", lambda labels: max(labels.count(l) for l in labels) / len(labels)).passed


def test_gain_rejects_sign_and_order_mistakes():
    def wrong_sign(points):
        acc = {(p.init, p.per_class): p.accuracy for p in points}
        return {n: acc[("scratch", n)] - acc[("pretrained", n)] for n in {p.per_class for p in points}}

    def assumes_order(points):
        return {points[i].per_class: points[i].accuracy - points[i + 1].accuracy
                for i in range(0, len(points), 2)}

    assert "sign" in evaluate("01.3", wrong_sign).message
    assert evaluate("01.3", assumes_order).status == FAILED


def test_gain_accepts_a_variant():
    def variant(points):
        pre = {p.per_class: p.accuracy for p in points if p.init == "pretrained"}
        return {n: pre[n] - p.accuracy for p in points if p.init == "scratch" for n in [p.per_class]}

    assert evaluate("01.3", variant).status == PASSED


def test_registered_lists_a_lessons_exercises():
    assert checks.registered("00") == ["00.1", "00.2"]
    assert checks.registered("77") == []
    assert isinstance(CurvePoint("scratch", 1, 1, 0.5, 0.1).accuracy, float)
