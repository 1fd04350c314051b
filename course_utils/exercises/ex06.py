"""Checks for lesson 06 (question answering): answer token spans and SQuAD F1."""

from __future__ import annotations

from ..checks import checker, expect, expect_callable, judge

# "[CLS] where was ada born ? [SEP] ada was born in porto city . [SEP]"
#  question = "where was ada born?"  context = "Ada was born in Porto city."
_SEQ = [None, 0, 0, 0, 0, 0, None, 1, 1, 1, 1, 1, 1, 1, None]
_OFF = [(0, 0), (0, 5), (6, 9), (10, 13), (14, 18), (18, 19), (0, 0),
        (0, 3), (4, 7), (8, 12), (13, 15), (16, 21), (22, 26), (26, 27), (0, 0)]
_WINDOW = [None, 0, 0, 0, 0, 0, None, 1, 1, 1, 1, None]  # the context was cut after 'in'


@checker("06.1", "token span of an answer", answer="answer_token_span")
def probe_answer_span(answer_token_span) -> list:
    expect_callable(answer_token_span, "answer_token_span")
    return [tuple(answer_token_span(list(_OFF), list(_SEQ), 16, 21)),  # "Porto"
            tuple(answer_token_span(list(_OFF), list(_SEQ), 16, 26)),  # "Porto city"
            tuple(answer_token_span(list(_OFF), list(_SEQ), 0, 3)),  # "Ada", the first context token
            tuple(answer_token_span(_OFF[:11] + [(0, 0)], list(_WINDOW), 16, 21))]


@judge("06.1")
def judge_answer_span(spans: list) -> str:
    expect(len(spans) == 4, "your answer gave no span per case")
    porto, porto_city, ada, window = (tuple(s) for s in spans)
    expect(porto[:1] != (4,), "your start points into the QUESTION (which also has offsets from 0)",
           "only consider tokens whose sequence id is 1")
    expect(porto == (11, 11), f"the answer 'Porto' (characters 16..21) is token 11; you returned {porto}",
           "start: the token whose offsets contain start_char; end: the one containing end_char - 1")
    expect(porto_city != (11, 13) and porto_city != (11, 11),
           f"for 'Porto city' you returned {porto_city}: an off-by-one end",
           "the end is INCLUSIVE: the last token whose characters are inside the answer")
    expect(porto_city == (11, 12), f"for 'Porto city' (characters 16..26) you returned {porto_city}")
    expect(ada == (7, 7), f"for 'Ada' at the very start of the context you returned {ada}",
           "the first context token is right after the first [SEP]")
    expect(window == (0, 0), f"the window ends before 'Porto', yet you returned {window}",
           "if the answer is not entirely inside this window's context, point both ends at CLS (0)")
    return "spans are exact, and windows without the answer point at CLS"


F1_CASES = [("Porto", "Porto"), ("the Porto.", "porto"), ("in Porto city", "Porto"), ("Lisbon", "Porto"),
            ("porto porto", "porto"), ("the", "a."), ("", "Porto")]


@checker("06.2", "SQuAD F1", answer="squad_f1")
def probe_squad_f1(squad_f1) -> list:
    expect_callable(squad_f1, "squad_f1")
    return [squad_f1(prediction, reference) for prediction, reference in F1_CASES]


@judge("06.2")
def judge_squad_f1(scores: list) -> str:
    expect(len(scores) == len(F1_CASES) and all(isinstance(s, (int, float)) for s in scores),
           "return a number for every pair")
    same, normalised, half, none, repeated, empties, empty = scores
    expect(abs(same - 1.0) < 1e-9, "identical strings must score 1.0")
    expect(abs(normalised - 1.0) < 1e-9, "'the Porto.' vs 'porto' should score 1.0",
           "normalise both strings first: lower case, drop punctuation and the articles a/an/the")
    expect(abs(half - 0.5) < 1e-9, f"'in Porto city' vs 'Porto' should be 0.5, you returned {half}",
           "precision = shared tokens / predicted tokens, recall = shared / reference tokens; F1 = "
           "2PR/(P+R)")
    expect(none == 0, f"no shared token must give 0, you returned {none}")
    expect(abs(repeated - 2 / 3) < 1e-9, f"'porto porto' vs 'porto' should be 0.667, you returned {repeated}",
           "count shared tokens with multiplicity (collections.Counter & Counter), not as sets")
    expect(empties == 0, f"'the' vs 'a.' both normalise to nothing; SQuAD v1.1 scores that F1 0, you "
           f"returned {empties}", "no shared token means F1 0, with no special case for two empty "
           "answers (that special case is SQuAD v2.0's)")
    expect(empty == 0, f"an empty prediction must score 0, you returned {empty}")
    return "F1 with the official v1.1 normalisation and rules"
