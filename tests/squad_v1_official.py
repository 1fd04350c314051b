"""The scoring functions of the official SQuAD v1.1 evaluation script, kept verbatim as a reference.

Source: "Official evaluation script for v1.1 of the SQuAD dataset", `evaluate-v1.1.py`, published by
the SQuAD authors (Rajpurkar et al., Stanford NLP) with the dataset at
https://rajpurkar.github.io/SQuAD-explorer/ . Only `normalize_answer`, `f1_score`,
`exact_match_score` and `metric_max_over_ground_truths` are copied, unchanged except for line
wrapping; the file-reading `evaluate` loop is restated in `evaluate` below with the same rules
(an unanswered question scores 0, totals are percentages). The course's `course_utils.text.qa`
is tested against these functions.
"""

from collections import Counter
import re
import string


def normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return (normalize_answer(prediction) == normalize_answer(ground_truth))


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


def evaluate(questions, predictions):
    """The script's loop over (id, reference answers) pairs instead of the nested JSON."""
    f1 = exact_match = total = 0
    for qid, ground_truths in questions:
        total += 1
        if qid not in predictions:
            continue  # "Unanswered question will receive score 0."
        prediction = predictions[qid]
        exact_match += metric_max_over_ground_truths(exact_match_score, prediction, ground_truths)
        f1 += metric_max_over_ground_truths(f1_score, prediction, ground_truths)
    exact_match = 100.0 * exact_match / total
    f1 = 100.0 * f1 / total
    return {'exact_match': exact_match, 'f1': f1}
