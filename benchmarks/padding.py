"""Dynamic padding vs padding to a fixed maximum length: the same fine-tuning steps, timed.

Runs N identical optimiser steps (same model init, same batches, same order) on the tiny intent
data with the shipped MiniLM encoder, once with every example padded to --max-length tokens and
once with DataCollatorWithPadding padding each batch to its longest text. Prints the speed-up.

    .venv/bin/python benchmarks/padding.py --steps 12 --max-length 128
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

from course_utils.text.trainer import to_dataset
from course_utils.text.data import intent_splits
from course_utils.text.models import (freeze_word_embeddings, load_sequence_classifier, load_tokenizer,
                                      minilm_path)


def run(pad_to_max: bool, steps: int, max_length: int, batch_size: int) -> tuple[float, float, int]:
    """(seconds, final loss, tokens per batch on average) for `steps` training steps."""
    source = str(minilm_path())
    tokenizer = load_tokenizer(source)
    train, _ = intent_splits()
    ds = to_dataset(tokenizer, train, max_length=max_length, pad_to_max=pad_to_max).remove_columns(
        ["token_type_ids"])
    loader = DataLoader(ds.rename_column("label", "labels"), batch_size=batch_size, shuffle=True,
                        collate_fn=DataCollatorWithPadding(tokenizer),
                        generator=torch.Generator().manual_seed(0))
    model = load_sequence_classifier(source, train.names, seed=0)
    freeze_word_embeddings(model)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5)
    batches = [b for _, b in zip(range(steps + 1), loader)]
    widths = [b["input_ids"].shape[1] for b in batches[1:]]
    loss = model(**batches[0]).loss  # warm-up step, not timed
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    start = time.perf_counter()
    for batch in batches[1:]:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return time.perf_counter() - start, loss.item(), round(sum(widths) / len(widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    a = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}; {a.steps} steps, batch {a.batch_size}")
    fixed, fixed_loss, fixed_width = run(True, a.steps, a.max_length, a.batch_size)
    dynamic, dynamic_loss, dynamic_width = run(False, a.steps, a.max_length, a.batch_size)
    print(f"pad to {a.max_length}:  {fixed:6.2f} s  ({fixed_width} tokens per row, final loss {fixed_loss:.4f})")
    print(f"dynamic padding: {dynamic:6.2f} s  ({dynamic_width} tokens per row on average, final loss {dynamic_loss:.4f})")
    print(f"speed-up from dynamic padding: {fixed / dynamic:.1f}x")


if __name__ == "__main__":
    main()
