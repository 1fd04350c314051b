"""The tiny causal LM really knows its world, and a LoRA adapter teaches it a new answer style
that carries over to animals the adapter never saw."""

import pytest

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
    # measured 1.0 (30/30) with the default config
    assert clm.exact_match_rate(model, tok, pairs) >= 0.9


def test_lora_adaptation_beats_base_on_held_out_animals(base):
    model, tok = base
    train, test = clm.style_pairs()
    animal = lambda prompt: prompt.split("the ")[1].split()[0]
    assert not {animal(p) for p, _ in train} & {animal(p) for p, _ in test}
    before_loss, before_em = clm.answer_loss(model, tok, test), clm.exact_match_rate(model, tok, test)
    adapted, losses = clm.lora_finetune(model, tok, train, steps=150, progress=False)
    after_loss, after_em = clm.answer_loss(adapted, tok, test), clm.exact_match_rate(adapted, tok, test)
    # measured: loss 13.7 -> 0.14, exact match 0% -> 85% (seed 0)
    assert before_em == 0 and before_loss > 10
    assert after_loss < 1.0 and after_loss < before_loss - 9
    assert after_em >= 0.6
    assert losses[-1] < losses[0] / 10


def test_cache_is_keyed_by_config():
    assert clm.TinyLMConfig().key() != clm.TinyLMConfig(steps=10).key()
    assert clm.base_model_path(progress=False) == clm.base_model_path(progress=False)
