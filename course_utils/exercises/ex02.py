"""Checks for lesson 02 (feature extraction): freezing the backbone, a new head, trainable fraction."""

from __future__ import annotations

import torch
from torch import nn

from ..checks import checker, expect, expect_callable
from ..torch_utils import one_thread_on_cpu
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
        expect(head <= trainable, f"on {label} the head `fc` is frozen",
               "freeze everything, then switch `requires_grad` back on for the head's parameters: "
               "with a frozen head nothing at all would learn")
        extra = sorted(trainable - head)
        bn = [n for n in extra if ".bn" in n or n.startswith("bn") or "downsample.1" in n]
        expect(not bn, f"on {label} BatchNorm parameters are still trainable ({bn[:1]}...)",
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
            # a 2-image forward pass: one thread is ~20x faster on a busy machine, even for ResNet50
            with one_thread_on_cpu(model, below=10**9), torch.no_grad():
                out = model(x)
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
        expect(isinstance(got, (float, int)) and not isinstance(got, bool),
               f"return a number, not {type(got).__name__}")
        expect(not (want > 0 and abs(got - 100 * want) < 1e-6),
               "you returned a percentage", "return a fraction between 0 and 1")
        expect(not (abs(want - 1) > 1e-9 and abs(got - (1 - want)) < 1e-6),
               "you returned the frozen fraction", "count parameters with requires_grad=True")
        expect(abs(got - want) < 1e-6,
               f"with layers {frozen} frozen you returned {got:.4f}",
               "count scalar parameters with `p.numel()`, not parameter tensors or layers, "
               "and include BatchNorm's weight and bias")
    return "right with nothing, some and everything frozen"
