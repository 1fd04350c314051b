"""Checks for lesson 06 (question answering): answer token spans and SQuAD F1."""

from __future__ import annotations

from ..checks import checker, expect, expect_callable

# "[CLS] where was ada born ? [SEP] ada was born in porto city . [SEP]"
#  question = "where was ada born?"  context = "Ada was born in Porto city."
_SEQ = [None, 0, 0, 0, 0, 0, None, 1, 1, 1, 1, 1, 1, 1, None]
_OFF = [(0, 0), (0, 5), (6, 9), (10, 13), (14, 18), (18, 19), (0, 0),
        (0, 3), (4, 7), (8, 12), (13, 15), (16, 21), (22, 26), (26, 27), (0, 0)]


@checker("06.1", "token span of an answer")
def check_answer_span(answer_token_span) -> str:
    expect_callable(answer_token_span, "answer_token_span")
    span = tuple(answer_token_span(_OFF, _SEQ, 16, 21))  # "Porto"
    expect(span[0] != 4, "your start points into the QUESTION (which also has offsets from 0)",
           "only consider tokens whose sequence id is 1")
    expect(span == (11, 11), f"the answer 'Porto' (characters 16..21) is token 11; you returned {span}",
           "start: the token whose offsets contain start_char; end: the one containing end_char - 1")
    span = tuple(answer_token_span(_OFF, _SEQ, 16, 26))  # "Porto city"
    expect(span != (11, 13) and span != (11, 11), f"for 'Porto city' you returned {span}: an off-by-one end",
           "the end is INCLUSIVE: the last token whose characters are inside the answer")
    expect(span == (11, 12), f"for 'Porto city' (characters 16..26) you returned {span}")
    span = tuple(answer_token_span(_OFF, _SEQ, 0, 3))  # "Ada", the first context token
    expect(span == (7, 7), f"for 'Ada' at the very start of the context you returned {span}",
           "the first context token is right after the first [SEP]")
    window = [None, 0, 0, 0, 0, 0, None, 1, 1, 1, 1, None]  # the context was cut after 'in'
    span = tuple(answer_token_span(_OFF[:11] + [(0, 0)], window, 16, 21))
    expect(span == (0, 0), f"the window ends before 'Porto', yet you returned {span}",
           "if the answer is not entirely inside this window's context, point both ends at CLS (0)")
    return "spans are exact, and windows without the answer point at CLS"


@checker("06.2", "SQuAD F1")
def check_squad_f1(squad_f1) -> str:
    expect_callable(squad_f1, "squad_f1")
    expect(abs(squad_f1("Porto", "Porto") - 1.0) < 1e-9, "identical strings must score 1.0")
    expect(abs(squad_f1("the Porto.", "porto") - 1.0) < 1e-9, "'the Porto.' vs 'porto' should score 1.0",
           "normalise both strings first: lower case, drop punctuation and the articles a/an/the")
    got = squad_f1("in Porto city", "Porto")
    expect(abs(got - 0.5) < 1e-9, f"'in Porto city' vs 'Porto' should be 0.5, you returned {got}",
           "precision = shared tokens / predicted tokens, recall = shared / reference tokens; F1 = "
           "2PR/(P+R)")
    got = squad_f1("Lisbon", "Porto")
    expect(got == 0, f"no shared token must give 0, you returned {got}")
    got = squad_f1("porto porto", "porto")
    expect(abs(got - 2 / 3) < 1e-9, f"'porto porto' vs 'porto' should be 0.667, you returned {got}",
           "count shared tokens with multiplicity (collections.Counter & Counter), not as sets")
    got = squad_f1("the", "a.")
    expect(got == 0, f"'the' vs 'a.' both normalise to nothing; SQuAD v1.1 scores that F1 0, you "
           f"returned {got}", "no shared token means F1 0, with no special case for two empty "
           "answers (that special case is SQuAD v2.0's)")
    got = squad_f1("", "Porto")
    expect(got == 0, f"an empty prediction must score 0, you returned {got}")
    return "F1 with the official v1.1 normalisation and rules"
