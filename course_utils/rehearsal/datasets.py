"""Stand-in hub datasets: the real split names and `datasets.Features` (label names included),
with a few generated rows per split. Each docstring says where the schema was read from."""

from __future__ import annotations

import random

from course_utils.rehearsal import dataset_standin
from course_utils.rehearsal.text import qa_example, review, tagged_sentence

# CoNLL-2003 tag names in id order, from the `conll2003` loading script's `_info()` features,
# which the parquet copy lhoestq/conll2003 keeps in its README `dataset_info`.
CONLL_POS = ['"', "''", "#", "$", "(", ")", ",", ".", ":", "``", "CC", "CD", "DT", "EX", "FW", "IN",
             "JJ", "JJR", "JJS", "LS", "MD", "NN", "NNP", "NNPS", "NNS", "NN|SYM", "PDT", "POS", "PRP",
             "PRP$", "RB", "RBR", "RBS", "RP", "SYM", "TO", "UH", "VB", "VBD", "VBG", "VBN", "VBP",
             "VBZ", "WDT", "WP", "WP$", "WRB"]
CONLL_CHUNK = ["O", "B-ADJP", "I-ADJP", "B-ADVP", "I-ADVP", "B-CONJP", "I-CONJP", "B-INTJ", "I-INTJ",
               "B-LST", "I-LST", "B-NP", "I-NP", "B-PP", "I-PP", "B-PRT", "I-PRT", "B-SBAR", "I-SBAR",
               "B-UCP", "I-UCP", "B-VP", "I-VP"]
CONLL_NER = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataset_standin("stanfordnlp/imdb")
def imdb():
    """stanfordnlp/imdb (dataset card `dataset_info`, config plain_text): text string, label
    ClassLabel(neg, pos); splits train/test (25,000 each) and unsupervised (50,000, label -1).
    256 reviews per class in train: lesson 01's learning curve draws up to 256 per class."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    rng = random.Random(0)

    def split(n: int, labelled: bool = True) -> Dataset:
        labels = [i % 2 for i in range(n)]
        rows = {"text": [review(rng, y == 1) for y in labels],
                "label": labels if labelled else [-1] * n}
        return Dataset.from_dict(rows, features=features)

    return DatasetDict(train=split(512), test=split(64), unsupervised=split(16, labelled=False))


@dataset_standin("lhoestq/conll2003")
def conll2003():
    """lhoestq/conll2003 (README `dataset_info`, as the `conll2003` script's features): id string,
    tokens list of strings, pos_tags / chunk_tags / ner_tags lists of ClassLabel; splits train
    (14,041), validation (3,250), test (3,453)."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

    features = Features({"id": Value("string"), "tokens": List(Value("string")),
                         "pos_tags": List(ClassLabel(names=CONLL_POS)),
                         "chunk_tags": List(ClassLabel(names=CONLL_CHUNK)),
                         "ner_tags": List(ClassLabel(names=CONLL_NER))})
    rng = random.Random(0)

    def split(n: int) -> Dataset:
        rows = {k: [] for k in features}
        for i in range(n):
            sentence = tagged_sentence(rng)
            rows["id"].append(str(i))
            rows["tokens"].append([t for t, *_ in sentence])
            rows["pos_tags"].append([CONLL_POS.index(p) for _, p, _, _ in sentence])
            rows["chunk_tags"].append([CONLL_CHUNK.index(c) for _, _, c, _ in sentence])
            rows["ner_tags"].append([CONLL_NER.index(n) for *_, n in sentence])
        return Dataset.from_dict(rows, features=features)

    return DatasetDict(train=split(48), validation=split(24), test=split(24))


@dataset_standin("rajpurkar/squad")
def squad():
    """rajpurkar/squad (dataset card `dataset_info`, config plain_text): id, title, context,
    question strings; answers {text: list of strings, answer_start: list of int32}; splits train
    (87,599) and validation (10,570)."""
    from datasets import Dataset, DatasetDict, Features, List, Value

    features = Features({"id": Value("string"), "title": Value("string"), "context": Value("string"),
                         "question": Value("string"),
                         "answers": {"text": List(Value("string")), "answer_start": List(Value("int32"))}})
    rng = random.Random(0)

    def split(name: str, n: int) -> Dataset:
        rows = {k: [] for k in features}
        for i in range(n):
            title, context, question, answer = qa_example(rng)
            rows["id"].append(f"{name}-{i:05d}")
            rows["title"].append(title.replace(" ", "_"))
            rows["context"].append(context)
            rows["question"].append(question)
            rows["answers"].append({"text": [answer], "answer_start": [context.index(answer)]})
        return Dataset.from_dict(rows, features=features)

    return DatasetDict(train=split("train", 48), validation=split("validation", 24))


@dataset_standin("uoft-cs/cifar10")
def cifar10():
    """uoft-cs/cifar10 (dataset card `dataset_info`, config plain_text): img Image (32x32 RGB),
    label ClassLabel of the 10 class names; splits train (50,000) and test (10,000). Five images
    per class in train: the smallest labelled set the lessons draw."""
    import numpy as np
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Image
    from PIL import Image as PILImage

    features = Features({"img": Image(), "label": ClassLabel(names=CIFAR10)})
    rng = np.random.default_rng(0)

    def split(per_class: int) -> Dataset:
        labels = [c for _ in range(per_class) for c in range(len(CIFAR10))]
        images = [PILImage.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in labels]
        return Dataset.from_dict({"img": images, "label": labels}, features=features)

    return DatasetDict(train=split(5), test=split(2))


def _chat(rng: random.Random, turns: int) -> list[dict[str, str]]:
    from course_utils.llm.instruct_data import answer
    from course_utils.llm.tiny_world import ANIMALS, QUESTIONS

    out = []
    for _ in range(turns):
        animal, attribute = rng.choice(ANIMALS), rng.choice(sorted(QUESTIONS))
        out += [{"role": "user", "content": QUESTIONS[attribute].format(a=animal)},
                {"role": "assistant", "content": answer(animal, attribute, rng.choice(["sentence", "verbose"]))}]
    return out


def _messages_feature():
    from datasets import List, Value

    return List({"content": Value("string"), "role": Value("string")})


@dataset_standin("trl-lib/Capybara")
def capybara():
    """trl-lib/Capybara (dataset card `dataset_info`): source string, messages list of {content,
    role} (alternating user/assistant, starting with user), num_turns int64; splits train (15,806)
    and test (200)."""
    from datasets import Dataset, DatasetDict, Features, Value

    features = Features({"source": Value("string"), "messages": _messages_feature(),
                         "num_turns": Value("int64")})
    rng = random.Random(0)

    def split(n: int) -> Dataset:
        chats = [_chat(rng, rng.randint(1, 3)) for _ in range(n)]
        return Dataset.from_dict({"source": ["Know-Logic"] * n, "messages": chats,
                                  "num_turns": [len(c) for c in chats]}, features=features)

    return DatasetDict(train=split(48), test=split(16))


@dataset_standin("trl-lib/ultrafeedback_binarized")
def ultrafeedback_binarized():
    """trl-lib/ultrafeedback_binarized (dataset card `dataset_info`): chosen and rejected, each a
    list of {content, role} (the user prompt, then one assistant reply), score_chosen and
    score_rejected float64; no separate prompt column; splits train (62,135) and test (1,000)."""
    from datasets import Dataset, DatasetDict, Features, Value

    from course_utils.llm.instruct_data import answer
    from course_utils.llm.tiny_world import ANIMALS, QUESTIONS

    features = Features({"chosen": _messages_feature(), "rejected": _messages_feature(),
                         "score_chosen": Value("float64"), "score_rejected": Value("float64")})
    rng = random.Random(1)

    def split(n: int) -> Dataset:
        rows = {k: [] for k in features}
        for _ in range(n):
            animal, attribute = rng.choice(ANIMALS), rng.choice(sorted(QUESTIONS))
            user = {"role": "user", "content": QUESTIONS[attribute].format(a=animal)}
            rows["chosen"].append([user, {"role": "assistant", "content": answer(animal, attribute, "sentence")}])
            rows["rejected"].append([user, {"role": "assistant", "content": answer(animal, attribute, "wrong")}])
            high = rng.choice([7.0, 8.0, 9.0, 10.0])
            rows["score_chosen"].append(high)
            rows["score_rejected"].append(high - rng.choice([1.0, 2.0, 3.0]))
        return Dataset.from_dict(rows, features=features)

    return DatasetDict(train=split(48), test=split(16))
