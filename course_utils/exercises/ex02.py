"""Checks for lesson 02 (feature extraction): freezing the backbone, a new head, trainable fraction."""

from __future__ import annotations

import torch
from torch import nn

from ..checks import checker, expect, expect_callable
from ..vision.models import TinyResNet


def _models() -> list[tuple[str, nn.Module]]:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    return [("a TinyResNet", TinyResNet(num_classes=20, widths=(16, 32, 128))),
            ("a torchvision resnet18", resnet18(weights=None))]


def _frozen_names(model: nn.Module, trainable: bool) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad == trainable]


@checker("02.1", "freeze the backbone for feature extraction")
def check_freeze(freeze_for_feature_extraction) -> str:
    expect_callable(freeze_for_feature_extraction, "freeze_for_feature_extraction")
    for label, model in _models():
        freeze_for_feature_extraction(model)
        head = {n for n, _ in model.named_parameters() if n.startswith("fc.")}
        trainable = set(_frozen_names(model, True))
        expect(bool(_frozen_names(model, False)), f"on {label} nothing was frozen",
               "`model.eval()` and `torch.no_grad()` do not freeze anything: they switch dropout and "
               "BatchNorm to inference behaviour and stop recording gradients while they are active. "
               "Freezing means `p.requires_grad = False` on each backbone parameter")
        expect(head <= trainable, f"on {label} the head `fc` is frozen",
               "freeze everything, then switch `requires_grad` back on for the head's parameters: "
               "with a frozen head nothing at all would learn")
        extra = sorted(trainable - head)
        bn = [n for n in extra if ".bn" in n or n.startswith("bn") or "downsample.1" in n]
        convs_frozen = all(not p.requires_grad for n, p in model.named_parameters() if "conv" in n)
        expect(not (bn and convs_frozen), f"on {label} BatchNorm parameters are still trainable ({bn[:1]}...)",
               "BatchNorm's weight and bias belong to the backbone too: loop over all "
               "`model.parameters()`, not only the convolutions")
        expect(not extra, f"on {label} backbone parameters are still trainable ({extra[:1]}...)",
               "every parameter outside `model.fc` should have requires_grad=False")
    return "backbone frozen, head trainable, on both a tiny ResNet and resnet18"


@checker("02.2", "replace the head for k classes")
def check_head(replace_head_for) -> str:
    expect_callable(replace_head_for, "replace_head_for")
    models = _models()
    originals = [model.fc for _, model in models]
    for k in (3, 7):
        for (label, model), old_fc in zip(models, originals):
            model.fc = old_fc
            for p in model.parameters():
                p.requires_grad = False
            result = replace_head_for(model, k)
            expect(result is model or result is None or result is model.fc,
                   "return the model (or nothing): the head must be replaced *inside* it",
                   "assign the new head to `model.fc`")
            expect(model.fc is not old_fc, f"on {label} `model.fc` is still the old head",
                   "assign a new module to `model.fc`")
            size = 8 if "Tiny" in type(model).__name__ else 32
            x = torch.randn(2, 1 if "Tiny" in type(model).__name__ else 3, size, size)
            model.eval()
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # tiny forward passes: one thread is ~20x faster when busy
            try:
                with torch.no_grad():
                    features = torch.flatten(model.avgpool(_body(model, x)), 1)
                try:
                    with torch.no_grad():
                        out = model.fc(features)
                except RuntimeError as exc:
                    expect(False, f"on {label} the new head does not fit the backbone's features "
                           f"({features.shape[1]} numbers per image): {str(exc).splitlines()[0]}",
                           "read the input width from the old head, `model.fc.in_features` (2,048 "
                           "for ResNet50, 512 for resnet18, 128 for the tiny ResNet), instead of "
                           "typing it")
            finally:
                torch.set_num_threads(threads)
            expect(tuple(out.shape) == (2, k),
                   f"on {label} with {k} classes the output has shape {tuple(out.shape)}",
                   "the last Linear layer must have `num_classes` outputs, and its input size "
                   "must be read from the old head (`model.fc.in_features`), not typed in")
            head_params = list(model.fc.parameters())
            expect(head_params and all(p.requires_grad for p in head_params),
                   f"on {label} the new head is frozen",
                   "don't freeze after replacing the head: a new layer is trainable unless you "
                   "switch it off")
            backbone = [n for n, p in model.named_parameters()
                        if p.requires_grad and not n.startswith("fc.")]
            expect(not backbone, f"on {label} replacing the head unfroze {backbone[:1]}",
                   "only touch `model.fc`; the backbone's freezing is not this function's job")
    return "right output size for 3 and 7 classes, new head trainable, backbone untouched"


def _body(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The backbone's feature map before pooling, for a torchvision-style ResNet."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    for name, child in model.named_children():
        if name.startswith("layer"):
            x = child(x)
    return x


def _as_number(value) -> float | None:
    """A Python, NumPy or 0-d tensor scalar as a float; None for anything else (bools included)."""
    import numbers

    import numpy as np

    if isinstance(value, bool) or isinstance(value, np.bool_):
        return None
    if isinstance(value, torch.Tensor):
        return float(value.item()) if value.numel() == 1 and not value.dtype == torch.bool else None
    if isinstance(value, (numbers.Real, np.floating, np.integer)):
        return float(value)
    if isinstance(value, np.ndarray) and value.shape == ():
        return float(value)
    return None


@checker("02.3", "fraction of trainable parameters")
def check_fraction(trainable_fraction) -> str:
    expect_callable(trainable_fraction, "trainable_fraction")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.BatchNorm1d(20), nn.Linear(20, 3))
    cases = []
    for frozen in ([], [0], [0, 1], [0, 1, 2]):
        for i, layer in enumerate(model):
            for p in layer.parameters():
                p.requires_grad = i not in frozen
        cases.append((list(frozen), trainable_fraction(model)))
    total = 220 + 40 + 63
    for frozen, got in cases:
        trainable = sum(n for i, n in enumerate((220, 40, 63)) if i not in frozen)
        want = trainable / total
        number = _as_number(got)
        expect(number is not None, f"return a number, not {type(got).__name__}",
               "a Python float, a NumPy scalar or a one-element tensor all work")
        got = number
        expect(not (want > 0 and abs(got - 100 * want) < 1e-6),
               "you returned a percentage", "return a fraction between 0 and 1")
        expect(not (abs(want - 1) > 1e-9 and abs(got - (1 - want)) < 1e-6),
               "you returned the frozen fraction", "count parameters with requires_grad=True")
        expect(abs(got - want) < 1e-6,
               f"with layers {frozen} frozen you returned {got:.4f}",
               "count scalar parameters with `p.numel()`, not parameter tensors or layers, "
               "and include BatchNorm's weight and bias")
    return "right with nothing, some and everything frozen"
