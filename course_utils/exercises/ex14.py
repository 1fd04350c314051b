"""Checks for lesson 14 (preference tuning): the DPO loss of one pair, compared with the loss
TRL's `DPOTrainer` computes on the same pair; (chosen, rejected) pairs from ranked answers."""

from __future__ import annotations

import math
import random
from functools import lru_cache

from ..checks import checker, expect, expect_callable, judge
from ..llm.preference_data import pairs_from_ranking


BETAS = (0.1, 0.5, 2.0)
ROWS = [("what color is the fox ?", "the fox is red .", "red ."),
        ("where does the owl live ?", "the owl lives in the cave .", "the owl lives in the lake ."),
        ("what does the yak eat ?", "grass .", "the yak eats fish .")]


@lru_cache(maxsize=1)
def _models():
    """Two random tiny Llamas (policy, reference) and the chat tokenizer: arbitrary log-probs."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ..llm import causal_lm as clm

    tok = clm.build_tokenizer(clm.pretraining_corpus(chat=False), clm.INSTRUCT_BASE.vocab, "chatml")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    policy, ref = LlamaForCausalLM(config).eval(), LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for p in policy.parameters():
            p.mul_(8.0)  # spread the log-probs so margins are far from zero
    return policy, ref, tok


def _rows() -> list[dict]:
    return [{"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": c}],
             "rejected": [{"role": "assistant", "content": r}]} for q, c, r in ROWS]


@lru_cache(maxsize=1)
def _scored_pairs() -> list[tuple[float, float, float, float, float]]:
    """(policy_c, policy_r, ref_c, ref_r, beta) for each pair and beta: the inputs of the check."""
    from ..llm.dpo import completion_logps

    policy, ref, tok = _models()
    out = []
    for beta in BETAS:
        for row in _rows():
            lp = [completion_logps(m, tok, row["prompt"], row[k]) for m in (policy, ref) for k in ("chosen", "rejected")]
            out.append((lp[0], lp[1], lp[2], lp[3], beta))
    return out


@lru_cache(maxsize=1)
def _trl_losses() -> list[float]:
    """The loss TRL's DPOTrainer itself computes for each of `_scored_pairs()`, in the same order."""
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from ..llm.sft import quiet_trl, trainer_settings

    policy, ref, tok = _models()
    rows = _rows()
    args = DPOConfig(**trainer_settings(), beta=BETAS[0], per_device_eval_batch_size=1, max_length=None)
    with quiet_trl():
        trainer = DPOTrainer(model=policy, ref_model=ref, args=args, processing_class=tok,
                             train_dataset=Dataset.from_list(rows), eval_dataset=Dataset.from_list(rows))
    batches = list(trainer.get_eval_dataloader())  # not shuffled: batch i is rows[i]
    out = []
    for beta in BETAS:
        trainer.beta = beta
        for batch in batches:
            with torch.no_grad(), quiet_trl():
                out.append(trainer.compute_loss(trainer.model, batch).item())
    return out


def _random_cases() -> list[tuple[float, float, float, float, float]]:
    rng = random.Random(3)
    cases = []
    for _ in range(5):
        lp = [rng.uniform(-60, -1) for _ in range(4)]
        cases.append((*lp, rng.choice([0.05, 0.3, 1.0])))
    return cases


FIXED = [(-5.0, -5.0, -7.0, -7.0, 0.1), (-4.0, -9.0, -6.0, -6.0, 0.5), (-9.0, -4.0, -6.0, -6.0, 0.5)]


@checker("14.2", "the DPO loss of one pair", answer="dpo_loss")
def probe_dpo_loss(dpo_loss) -> dict:
    expect_callable(dpo_loss, "dpo_loss")
    return {"fixed": [float(dpo_loss(*case)) for case in FIXED],
            "random": [float(dpo_loss(*case)) for case in _random_cases()],
            "trl": [float(dpo_loss(*case)) for case in _scored_pairs()]}


@judge("14.2")
def judge_dpo_loss(got: dict) -> str:
    expect(isinstance(got, dict) and len(got.get("fixed", [])) == len(FIXED)
           and len(got.get("random", [])) == 5, "your function gave no loss per case")
    same, up, down = got["fixed"]
    expect(math.isclose(same, math.log(2), rel_tol=1e-5),
           f"when policy and reference agree the loss should be log 2 = 0.693, got {same:.4f}",
           "the loss is -log sigmoid(beta * margin); a zero margin gives -log(0.5)")
    expect(up < math.log(2) < down, "raising the chosen answer's log-prob (relative to the reference) must "
           "lower the loss", "margin = (pi_chosen - ref_chosen) - (pi_rejected - ref_rejected)")
    for lp_beta, value in zip(_random_cases(), got["random"]):
        *lp, beta = lp_beta
        margin = (lp[0] - lp[2]) - (lp[1] - lp[3])
        want = math.log1p(math.exp(-beta * margin)) if beta * margin > -30 else -beta * margin
        expect(math.isclose(value, want, rel_tol=1e-4, abs_tol=1e-6), f"loss {value:.5f} for log-probs "
               f"{[round(x, 2) for x in lp]} and beta {beta}, expected {want:.5f}",
               "does beta multiply the whole margin, and does each side subtract its reference?")
    trl = _trl_losses()
    expect(len(got.get("trl", [])) == len(trl), "your function gave no loss per scored pair")
    for value, want in zip(got["trl"], trl):
        expect(math.isclose(value, want, rel_tol=1e-3, abs_tol=1e-4),
               f"TRL's DPOTrainer computes {want:.5f} on a pair where yours gives {value:.5f}")
    return f"equal to DPOTrainer's loss on {len(trl)} pairs scored by random models"


def _as_set(pairs) -> set[tuple[str, str]]:
    return {tuple(p) for p in pairs}


CASES = [
    [("the fox is red .", 1.0), ("red .", 0.8), ("the fox is blue .", 0.5)],
    [("red .", 0.8), ("the fox is red .", 1.0)],  # not sorted
    [("a .", 0.5), ("b .", 0.5), ("c .", 0.9)],  # a tie
    [("x .", 0.7), ("x .", 0.2), ("y .", 0.4)],  # the same text twice
    [("only .", 1.0)],
    [("p .", 0.1), ("q .", 0.2), ("r .", 0.3), ("s .", 0.4)],
]


@checker("14.1", "pairs from ranked answers", answer="build_pairs")
def probe_build_pairs(build_pairs) -> list:
    expect_callable(build_pairs, "build_pairs")
    out = []
    for answers in CASES:
        got = build_pairs(list(answers))
        expect(isinstance(got, list), f"expected a list of (chosen, rejected) tuples, got {type(got).__name__}")
        expect(all(isinstance(p, (tuple, list)) and len(p) == 2 for p in got), "each pair is (chosen, rejected): two texts")
        out.append([[str(a), str(b)] for a, b in got])
    return out


@judge("14.1")
def judge_build_pairs(outputs: list) -> str:
    expect(isinstance(outputs, list) and len(outputs) == len(CASES), "your function gave no pairs per case")
    for answers, got in zip(CASES, outputs):
        got = [tuple(p) for p in got]
        want = pairs_from_ranking(answers)
        expect(all(len(p) == 2 for p in got), "each pair is (chosen, rejected): two texts")
        expect(len(got) == len(_as_set(got)), "your pairs contain duplicates")
        flipped = _as_set(got) & {(b, a) for a, b in want}
        expect(not flipped, "some pairs have the lower-scored answer as chosen",
               "chosen is the answer with the higher score")
        expect(all(a != b for a, b in got), "a pair of an answer with itself carries no preference")
        expect(_as_set(got) == _as_set(want), f"for {len(answers)} answers with scores "
               f"{[s for _, s in answers]} expected {len(want)} pair(s), got {len(got)}",
               "make a pair of every two answers whose scores differ; ties give no pair")
    return "pairs match for sorted, unsorted, tied and repeated answers"
