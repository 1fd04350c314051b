"""Checks for lesson 05 (NER): aligning word labels to sub-tokens, both conventions."""

from __future__ import annotations

from ..checks import checker, expect, expect_callable, judge
from ..text.ner import IGNORE, LABELS

# "[CLS] angela mer ##kel visited gd ##ansk [SEP]" -> words 0..3
_WORD_IDS = [None, 0, 1, 1, 2, 3, 3, None]
_WORD_LABELS = [LABELS.index("B-PER"), LABELS.index("I-PER"), 0, LABELS.index("B-LOC")]
# a one-word entity split in three pieces, then a word that is O
_WORD_IDS_2 = [None, 0, 0, 0, 1, None, None]
_WORD_LABELS_2 = [LABELS.index("B-ORG"), 0]


def _call(func, word_ids, word_labels):
    out = func(list(word_ids), list(word_labels))
    expect(isinstance(out, list) and len(out) == len(word_ids),
           f"return a list with one label per token ({len(word_ids)}), got {out!r}"[:300],
           "loop over word_ids: one output label for every position")
    return [int(x) for x in out]


def _both(func) -> list:
    return [_call(func, _WORD_IDS, _WORD_LABELS), _call(func, _WORD_IDS_2, _WORD_LABELS_2)]


def _labels(outputs: list, lengths=(len(_WORD_IDS), len(_WORD_IDS_2))) -> tuple[list, list]:
    expect(len(outputs) == 2 and all(isinstance(o, list) and len(o) == n for o, n in zip(outputs, lengths)),
           "return a list with one label per token", "loop over word_ids: one output label for every position")
    return outputs[0], outputs[1]


@checker("05.1", "align labels: first sub-token only", answer="align_labels")
def probe_first_piece(align_labels) -> list:
    expect_callable(align_labels, "align_labels")
    return _both(align_labels)


@judge("05.1")
def judge_first_piece(outputs: list) -> str:
    out, out2 = _labels(outputs)
    expect(out[0] == IGNORE and out[-1] == IGNORE, "special tokens ([CLS]/[SEP]) must get -100",
           "a word id of None marks a special token")
    expect(out[3] != LABELS.index("I-PER") and out[3] != LABELS.index("B-PER"),
           "you labelled the second piece of a word; this variant labels only the first",
           "remember the previous word id: a repeated id is a continuation piece")
    expect(out == [IGNORE, 1, 2, IGNORE, 0, 5, IGNORE, IGNORE],
           f"for word_ids {_WORD_IDS} and word labels {_WORD_LABELS} you returned {out}",
           "first piece of each word: the word's label; other pieces and special tokens: -100")
    expect(out2 == [IGNORE, 3, IGNORE, IGNORE, 0, IGNORE, IGNORE], f"on a word split into three pieces "
           f"you returned {out2}", "only the first of the three pieces keeps B-ORG")
    return "one label per word, on its first piece"


@checker("05.2", "align labels: every sub-token", answer="align_labels_all")
def probe_every_piece(align_labels_all) -> list:
    expect_callable(align_labels_all, "align_labels_all")
    return _both(align_labels_all)


@judge("05.2")
def judge_every_piece(outputs: list) -> str:
    out, out2 = _labels(outputs)
    expect(out[0] == IGNORE and out[-1] == IGNORE, "special tokens ([CLS]/[SEP]) must still get -100",
           "a word id of None marks a special token")
    expect(out[3] != IGNORE and out[6] != IGNORE, "continuation pieces got -100; this variant labels them",
           "every piece of a word gets a real label here")
    expect(out[6] != LABELS.index("B-LOC"), "the second piece of 'gdansk' got B-LOC: that would start a "
           "second entity", "a continuation piece of a B-X word gets I-X")
    expect(out == [IGNORE, 1, 2, 2, 0, 5, 6, IGNORE], f"you returned {out}",
           "continuation pieces copy the word's label, with B- turned into I-")
    expect(out2 == [IGNORE, 3, 4, 4, 0, IGNORE, IGNORE], f"on a word split into three pieces you returned {out2}",
           "B-ORG on the first piece, I-ORG on the other two")
    return "every piece labelled, entities stay one span"
