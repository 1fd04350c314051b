"""The tiny causal LM really knows its world, and a LoRA adapter teaches it a new answer style
that carries over to animals the adapter never saw."""

import pytest

from course_utils.claims import claim
from course_utils.llm import causal_lm as clm


@pytest.fixture(scope="module")
def base():
    return clm.load_base(progress=False)


def test_tokenizer_encodes_any_text_and_words_are_single_tokens(base):
    _, tok = base
    text = "Hello, Wörld! 42"
    assert tok.decode(tok(text)["input_ids"]) == text
    assert len(tok.tokenize(" ibis")) == 1
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                   add_generation_prompt=True) == clm.format_chat("hi")


def test_base_model_knows_the_world(base):
    model, tok = base
    facts = clm.world()
    pairs = [(clm.QUESTIONS[k].format(a=a), clm.STATEMENTS[k][0].format(a=a, v=v))
             for a in clm.ANIMALS[:10] for k, v in facts[a].items()]
    # the base's pretraining has a fixed seed; the numeric path still varies (the sweep's table)
    rate = clm.exact_match_rate(model, tok, pairs)
    claim("test: the tiny base LM states the facts of 10 animals", rate >= 0.9, exact_match=rate)


def test_lora_adaptation_beats_base_on_held_out_animals(base, course_seed):
    model, tok = base
    train, test = clm.style_pairs()
    animal = lambda prompt: prompt.split("the ")[1].split()[0]
    assert not {animal(p) for p, _ in train} & {animal(p) for p, _ in test}
    before_loss, before_em = clm.answer_loss(model, tok, test), clm.exact_match_rate(model, tok, test)
    adapted, losses = clm.lora_finetune(model, tok, train, steps=150, progress=False, seed=course_seed)
    after_loss, after_em = clm.answer_loss(adapted, tok, test), clm.exact_match_rate(adapted, tok, test)
    # margins: benchmarks/claims_sweep.py --tests (docs/results.md)
    assert before_em == 0 and before_loss > 10
    claim("test: LoRA on the tiny LM, held-out answer loss falls below 1 and by more than 9",
          after_loss < 1.0 and after_loss < before_loss - 9, before=before_loss, after=after_loss)
    claim("test: LoRA on the tiny LM, held-out exact match reaches 0.6", after_em >= 0.6, exact_match=after_em)
    claim("test: LoRA on the tiny LM, the training loss falls tenfold", losses[-1] < losses[0] / 10,
          first=losses[0], last=losses[-1])


def test_cache_is_keyed_by_config():
    assert clm.TinyLMConfig().key() != clm.TinyLMConfig(steps=10).key()
    assert clm.base_model_path(progress=False) == clm.base_model_path(progress=False)
