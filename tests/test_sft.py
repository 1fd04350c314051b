"""Instruction tuning: the ChatML template and the assistant-only mask agree with TRL, the
lesson-13 checkers accept right answers and reject the classic mistakes, and `sft_train` (the call
the fine-tuning service makes) really teaches the tiny base model to answer held-out prompts."""

import pytest

from course_utils.checks import evaluate, learner_or_reference
from course_utils.claims import claim
from course_utils.exercises.ex13 import _cases, _tokenizer
from course_utils.llm import causal_lm as clm
from course_utils.llm import instruct_data as data
from course_utils.llm import judging, sft


@pytest.fixture(scope="module")
def tok():
    return _tokenizer()


def test_template_is_chatml_and_render_matches_it(tok):
    for msgs in _cases():
        assert tok.apply_chat_template(msgs, tokenize=False) == sft.render_chatml(msgs)
        assert (tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
                == sft.render_chatml(msgs[:-1], add_generation_prompt=True))
    assert tok.eos_token == "<|im_end|>"


def test_reference_mask_equals_trl_and_keeps_every_end_of_turn(tok):
    end = tok.convert_tokens_to_ids("<|im_end|>")
    for msgs in _cases():
        ids, trl_labels = sft.trl_assistant_labels(msgs, tok)
        labels = sft.assistant_labels(ids, tok)
        assert labels == trl_labels
        assert labels.count(end) == sum(m["role"] == "assistant" for m in msgs)
        assert sft.drop_eos_labels(labels, tok).count(end) == 0


def _last_turn_only(ids, tok):
    labels = sft.assistant_labels(ids, tok)
    start = tok.convert_tokens_to_ids("<|im_start|>")
    last = max(i for i, t in enumerate(ids) if t == start)
    return [-100 if i < last else l for i, l in enumerate(labels)]


def test_mask_checker_accepts_reference_and_rejects_mistakes():
    assert evaluate("13.2", sft.assistant_labels).passed
    wrong = [lambda ids, tok: list(ids),  # no mask at all
             lambda ids, tok: [-100] * len(ids),
             lambda ids, tok: sft.drop_eos_labels(sft.assistant_labels(ids, tok), tok),  # never learns to stop
             _last_turn_only]
    for fn in wrong:
        assert evaluate("13.2", fn).status == "failed"

    def stub(ids, tok):
        raise NotImplementedError

    assert evaluate("13.2", stub).status == "not attempted"


def test_format_checker_accepts_variants_and_rejects_mistakes():
    assert evaluate("13.1", sft.render_chatml).passed

    def via_join(messages, add_generation_prompt=False):  # a correct variant written differently
        parts = ["<|im_start|>" + m["role"] + "\n" + m["content"] + "<|im_end|>\n" for m in messages]
        if add_generation_prompt:
            parts.append("<|im_start|>assistant\n")
        return "".join(parts)

    assert evaluate("13.1", via_join).passed
    wrong = [lambda m, add_generation_prompt=False: sft.render_chatml(m, add_generation_prompt).replace("<|im_end|>\n", "<|im_end|>"),
             lambda m, add_generation_prompt=False: sft.render_chatml(m, False),  # ignores the generation prompt
             lambda m, add_generation_prompt=False: "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
             + sft.render_chatml(m, add_generation_prompt)]
    for fn in wrong:
        assert evaluate("13.1", fn).status == "failed"


def test_learner_or_reference_falls_back_visibly(capsys):
    def stub(ids, tok):
        raise NotImplementedError

    assert learner_or_reference("13.2", stub, sft.assistant_labels) is sft.assistant_labels
    assert "using the course's version until yours passes" in capsys.readouterr().out
    mine = lambda ids, tok: sft.assistant_labels(ids, tok)
    assert learner_or_reference("13.2", mine, sft.assistant_labels) is mine


def test_openai_records_become_one_row_per_trained_turn():
    rec = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"},
                        {"role": "assistant", "content": "b", "weight": 0}, {"role": "user", "content": "c"},
                        {"role": "assistant", "content": "d"}]}
    rows = sft.openai_to_prompt_completion([rec])
    assert len(rows) == 1 and rows[0]["completion"] == [{"role": "assistant", "content": "d"}]
    assert [m["content"] for m in rows[0]["prompt"]] == ["s", "a", "b", "c"]
    with pytest.raises(ValueError):
        sft.openai_to_prompt_completion([{"messages": [{"role": "user", "content": "x"}]}])


def test_sft_train_teaches_the_base_to_answer_held_out_prompts(course_seed):
    base, tok = clm.load_base(clm.INSTRUCT_BASE, progress=False)
    lesson = data.lesson_data("tiny")
    base_replies = judging.replies(base, tok, lesson["messages"])
    before = judging.exact_match(base_replies, lesson["references"])
    rubric_before = judging.rubric_score(base_replies, lesson["prompts"], lesson["facts"])
    held_before = judging.heldout_loss(base, tok, lesson["heldout"])["loss"]
    model, tok = clm.load_base(clm.INSTRUCT_BASE, progress=False)  # a fresh copy, as the lesson trains
    recipe = sft.SFT_RECIPES["tiny"]  # lesson 13's
    tuned, history = sft.sft_train(model, tok, lesson["train"], n_epochs=recipe["num_train_epochs"],
                                   learning_rate=recipe["learning_rate"],
                                   batch_size=recipe["per_device_train_batch_size"], max_length=recipe["max_length"],
                                   seed=course_seed)
    assert hasattr(tuned, "peft_config")
    replies = judging.replies(tuned, tok, lesson["messages"])
    held_after = judging.heldout_loss(tuned, tok, lesson["heldout"])["loss"]
    after = judging.exact_match(replies, lesson["references"])
    # the base is deterministic (test below). Over seeds 0-4 x two CPU paths (claims_sweep --tests),
    # each path pretraining its own base: every reply stops, rubric 0.03-0.06 -> 0.49-0.85, held-out
    # loss 8.5-9.6 -> 1.9-2.1; exact match 0 -> 0.04-0.63 depends on the CPU's base, so it is printed,
    # not asserted (lesson 13 says why)
    assert before == 0
    claim("test: sft_train, held-out replies stop", judging.stop_rate(replies) >= 0.8,
          stop_rate=judging.stop_rate(replies))
    rubric_after = judging.rubric_score(replies, lesson["prompts"], lesson["facts"])
    print(f"exact match {before:.2f} -> {after:.2f}, rubric {rubric_before:.2f} -> {rubric_after:.2f}, "
          f"held-out loss {held_before:.2f} -> {held_after:.2f}")
    claim("test: sft_train, the rubric rises by more than 0.3", rubric_after > rubric_before + 0.3,
          before=rubric_before, after=rubric_after)
    claim("test: sft_train, the held-out loss falls by more than 3", held_after < held_before - 3,
          before=held_before, after=held_after)
    losses = [h["loss"] for h in history if "loss" in h]
    claim("test: sft_train, the training loss falls threefold", losses[-1] < losses[0] / 3,
          first=losses[0], last=losses[-1])


def test_batched_judges_equal_one_at_a_time():
    """Replies are generated left-padded in batches and losses computed right-padded in batches:
    the padding must change nothing, so each equals its one-prompt-at-a-time value."""
    model, tok = clm.load_base(clm.INSTRUCT_BASE, progress=False)
    lesson = data.lesson_data("tiny")
    prompts = lesson["messages"][:7] + ["where does the fox live ?"]  # prompts of different lengths
    assert judging.replies(model, tok, prompts, max_new_tokens=6, batch_size=3) == \
        [judging.reply(model, tok, p, max_new_tokens=6) for p in prompts]
    rows = [(ids, ids) for ids in tok(lesson["general"][:20], add_special_tokens=False)["input_ids"]]
    assert judging._mean_loss(model, rows, batch_size=8) == pytest.approx(judging._mean_loss(model, rows, batch_size=1),
                                                                         rel=1e-5)


def test_exact_match_needs_a_stopped_reply_and_the_same_words():
    refs = ["the fox is red .", "the owl is blue ."]
    assert judging.exact_match([judging.Reply(refs[0], True), judging.Reply(refs[1], False)], refs) == 0.5
    assert judging.exact_match([judging.Reply("the fox is red", True), judging.Reply(refs[1], True)], refs) == 0.5
    assert judging.exact_match(refs, refs) == 1.0  # plain strings, as `causal_lm.exact_match_rate` scores them
    with pytest.raises(ValueError):
        judging.exact_match(refs[:1], refs)


def test_rubric_scores_each_part():
    facts = data.world()
    a, k = "fox", "color"
    right = data.answer(a, k)
    assert judging.rubric(judging.Reply(right, True), a, k, facts)["score"] == pytest.approx(1.0)
    assert judging.rubric(judging.Reply(right, False), a, k, facts)["score"] == pytest.approx(0.85)
    assert judging.rubric(judging.Reply(data.answer(a, k, "wrong"), True), a, k, facts)["correct"] is False
    assert judging.rubric(judging.Reply(data.answer(a, k, "terse"), True), a, k, facts)["names_the_animal"] is False


_PRETRAIN_DIGEST = """
import dataclasses, hashlib, json
from course_utils.llm import causal_lm as clm
model, tok = clm.pretrain(dataclasses.replace(clm.INSTRUCT_BASE, steps=30), progress=False)
h = hashlib.sha256(json.dumps(sorted(tok.get_vocab().items())).encode())
for name, value in sorted(model.state_dict().items()):
    h.update(name.encode()); h.update(value.numpy().tobytes())
print(h.hexdigest())
"""


def test_pretraining_gives_the_same_base_in_fresh_processes(tmp_path):
    """Every suite run pretrains in a fresh cache: the lessons' claims rest on one base, not on
    whichever one a process happens to build (different hash seeds, caches and token threads)."""
    import os
    import subprocess
    import sys

    digests = []
    for i, (hash_seed, parallel) in enumerate([("1", "true"), ("2", "false")]):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, TOKENIZERS_PARALLELISM=parallel,
                   COURSE_CACHE=str(tmp_path / str(i)))
        out = subprocess.run([sys.executable, "-c", _PRETRAIN_DIGEST], env=env, capture_output=True,
                             text=True, check=True)
        digests.append(out.stdout.strip().splitlines()[-1])
    assert digests[0] == digests[1]
