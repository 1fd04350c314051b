"""Class-balanced sampling, shared by the text and image splits of the few-label lessons."""

from __future__ import annotations

import random
from typing import Sequence


def balanced_indices(labels: Sequence[int], names: Sequence[str], per_class: int,
                     seed: int = 0) -> list[int]:
    """Indices of `per_class` examples of every class, shuffled, chosen by `seed`: the "we only
    labelled a handful of examples" scenario, with every class equally represented."""
    rng = random.Random(seed)
    picked: list[int] = []
    for label, name in enumerate(names):
        members = [i for i, y in enumerate(labels) if y == label]
        if len(members) < per_class:
            raise ValueError(f"class {name!r} has {len(members)} examples, "
                             f"fewer than the {per_class} asked for")
        picked += rng.sample(members, per_class)
    rng.shuffle(picked)
    return picked
