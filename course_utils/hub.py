"""The one loading boundary for everything the full profile fetches from the Hugging Face hub or
torchvision: model checkpoints and tokenizers, datasets, and ImageNet backbones.

Outside the rehearsal each function calls the real loader with the real name, unchanged. In the
full-profile rehearsal (`COURSE_REHEARSAL=1`, see `course_utils.profile.rehearsal`) it returns a
local stand-in of the same class, config and features from `course_utils.rehearsal`, so that the
code after loading (Trainer, collators, PEFT, bitsandbytes, the service, the grader) is the real
full code, run offline.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from course_utils.profile import rehearsal


def model_source(name: str) -> str:
    """What `from_pretrained` should load for the hub checkpoint `name` (model and tokenizer):
    the hub id itself, or in the rehearsal a local folder holding a stand-in checkpoint."""
    if not rehearsal():
        return name
    from course_utils.rehearsal import checkpoint_dir

    return str(checkpoint_dir(name))


def load_dataset(name: str, **kwargs: Any):
    """`datasets.load_dataset(name)`, or in the rehearsal a small generated `DatasetDict` with the
    real splits and `Features` (label names included)."""
    if rehearsal():
        from course_utils.rehearsal import dataset

        return dataset(name)
    import datasets

    return datasets.load_dataset(name, **kwargs)


def vision_model(name: str, weights: Any = None) -> nn.Module:
    """`torchvision.models.get_model(name, weights=weights)` (weights download on first use), or in
    the rehearsal the stand-in architecture of the same class with random weights."""
    if rehearsal():
        from course_utils.rehearsal import vision_model as standin

        return standin(name)
    import torchvision

    return torchvision.models.get_model(name, weights=weights)


def vision_transforms(weights: Any) -> Callable:
    """The preprocessing a torchvision weights enum prescribes (`weights.transforms()`, which
    downloads nothing); in the rehearsal the same transform sized for the stand-in."""
    if rehearsal():
        from course_utils.rehearsal import vision_transforms as standin

        return standin(weights)
    return weights.transforms()
