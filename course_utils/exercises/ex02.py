"""Checks for lesson 02 (feature extraction): freezing the backbone, a new head, trainable fraction."""

from __future__ import annotations

import torch
from torch import nn

from ..checks import checker, expect, expect_callable, judge
from ..torch_utils import one_thread_on_cpu
from ..vision.models import TinyResNet


def _models() -> list[tuple[str, nn.Module]]:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    return [("a TinyResNet", TinyResNet(num_classes=20, widths=(16, 32, 128))),
            ("a torchvision resnet18", resnet18(weights=None))]


def _flags(model: nn.Module) -> list[list]:
    """A model's state as data: each parameter's name and requires_grad flag."""
    return [[n, bool(p.requires_grad)] for n, p in model.named_parameters()]


@checker("02.1", "freeze the backbone for feature extraction", answer="freeze_for_feature_extraction")
def probe_freeze(freeze_for_feature_extraction) -> list:
    expect_callable(freeze_for_feature_extraction, "freeze_for_feature_extraction")
    out = []
    for _, model in _models():
        freeze_for_feature_extraction(model)
        out.append(_flags(model))
    return out


@judge("02.1")
def judge_freeze(states: list) -> str:
    expect(isinstance(states, list) and len(states) == 2, "your answer gave no model state to check")
    for (label, model), state in zip(_models(), states):
        names = [n for n, _ in model.named_parameters()]
        expect([n for n, _ in state] == names, f"on {label} the parameters changed",
               "only switch requires_grad; do not add, remove or replace layers")
        trainable = {n for n, flag in state if flag is True}
        head = {n for n in names if n.startswith("fc.")}
        expect(len(trainable) < len(names), f"on {label} nothing was frozen",
               "`model.eval()` and `torch.no_grad()` do not freeze anything: they switch dropout and "
               "BatchNorm to inference behaviour and stop recording gradients while they are active. "
               "Freezing means `p.requires_grad = False` on each backbone parameter")
        expect(head <= trainable, f"on {label} the head `fc` is frozen",
               "freeze everything, then switch `requires_grad` back on for the head's parameters: "
               "with a frozen head nothing at all would learn")
        extra = sorted(trainable - head)
        bn = [n for n in extra if ".bn" in n or n.startswith("bn") or "downsample.1" in n]
        convs_frozen = all(flag is False for n, flag in state if "conv" in n)
        expect(not (bn and convs_frozen), f"on {label} BatchNorm parameters are still trainable ({bn[:1]}...)",
               "BatchNorm's weight and bias belong to the backbone too: loop over all "
               "`model.parameters()`, not only the convolutions")
        expect(not extra, f"on {label} backbone parameters are still trainable ({extra[:1]}...)",
               "every parameter outside `model.fc` should have requires_grad=False")
    return "backbone frozen, head trainable, on both a tiny ResNet and resnet18"


@checker("02.2", "replace the head for k classes", answer="replace_head_for")
def probe_head(replace_head_for) -> list:
    expect_callable(replace_head_for, "replace_head_for")
    models = _models()
    originals = [model.fc for _, model in models]
    out = []
    for k in (3, 7):
        for (label, model), old_fc in zip(models, originals):
            model.fc = old_fc
            for p in model.parameters():
                p.requires_grad = False
            result = replace_head_for(model, k)
            tiny = "Tiny" in type(model).__name__
            record = {"returned_model": result is model or result is None or result is model.fc,
                      "replaced": model.fc is not old_fc, "shape": None, "error": "", "fit_error": ""}
            x = torch.randn(2, 1 if tiny else 3, 8 if tiny else 32, 8 if tiny else 32)
            model.eval()
            # a 2-image forward pass: one thread is ~20x faster on a busy machine, even for ResNet50
            try:
                with one_thread_on_cpu(model, below=10**9), torch.no_grad():
                    features = torch.flatten(model.avgpool(_body(model, x)), 1)
                    try:
                        record["shape"] = list(model.fc(features).shape)
                    except RuntimeError as exc:
                        record["fit_error"] = str(exc).splitlines()[0][:200]
            except Exception as exc:
                record["error"] = f"{type(exc).__name__}: {exc}"[:200]
            head = list(model.fc.parameters())
            record["head_trainable"] = bool(head) and all(p.requires_grad for p in head)
            record["trainable_backbone"] = [n for n, p in model.named_parameters()
                                            if p.requires_grad and not n.startswith("fc.")]
            out.append(record)
    return out


def _body(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The backbone's feature map before pooling, for a torchvision-style ResNet."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    for name, child in model.named_children():
        if name.startswith("layer"):
            x = child(x)
    return x


@judge("02.2")
def judge_head(records: list) -> str:
    models = _models()
    cases = [(k, label, model.fc.in_features) for k in (3, 7) for label, model in models]
    expect(isinstance(records, list) and len(records) == len(cases), "your answer gave no result per model")
    for (k, label, width), got in zip(cases, records):
        expect(got["returned_model"] is True,
               "return the model (or nothing): the head must be replaced *inside* it",
               "assign the new head to `model.fc`")
        expect(got["replaced"] is True, f"on {label} `model.fc` is still the old head",
               "assign a new module to `model.fc`")
        expect(not got.get("fit_error"), f"on {label} the new head does not fit the backbone's features "
               f"({width} numbers per image): {got.get('fit_error')}",
               "read the input width from the old head, `model.fc.in_features` (2,048 "
               "for ResNet50, 512 for resnet18, 128 for the tiny ResNet), instead of "
               "typing it")
        expect(not got["error"], f"on {label} with {k} classes the forward pass failed: {got['error']}",
               "the new head's input size must be read from the old head (`model.fc.in_features`)")
        expect(got["shape"] == [2, k],
               f"on {label} with {k} classes the output has shape {tuple(got['shape'] or ())}",
               "the last Linear layer must have `num_classes` outputs, and its input size "
               "must be read from the old head (`model.fc.in_features`), not typed in")
        expect(got["head_trainable"] is True, f"on {label} the new head is frozen",
               "don't freeze after replacing the head: a new layer is trainable unless you "
               "switch it off")
        backbone = got["trainable_backbone"]
        expect(not backbone, f"on {label} replacing the head unfroze {backbone[:1]}",
               "only touch `model.fc`; the backbone's freezing is not this function's job")
    return "right output size for 3 and 7 classes, new head trainable, backbone untouched"


def _as_number(value) -> float | None:
    """A Python or NumPy scalar, or a one-element array (a tensor arrives as one), as a float;
    None for anything else (bools included)."""
    import numpy as np

    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype != np.bool_:
        return float(value.reshape(()))
    return None


FROZEN_CASES = ([], [0], [0, 1], [0, 1, 2])
SIZES = (220, 40, 63)


@checker("02.3", "fraction of trainable parameters", answer="trainable_fraction")
def probe_fraction(trainable_fraction) -> list:
    expect_callable(trainable_fraction, "trainable_fraction")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.BatchNorm1d(20), nn.Linear(20, 3))
    out = []
    for frozen in FROZEN_CASES:
        for i, layer in enumerate(model):
            for p in layer.parameters():
                p.requires_grad = i not in frozen
        out.append(trainable_fraction(model))
    return out


@judge("02.3")
def judge_fraction(outputs: list) -> str:
    expect(isinstance(outputs, list) and len(outputs) == len(FROZEN_CASES), "your answer gave no result per case")
    total = sum(SIZES)
    for frozen, got in zip(FROZEN_CASES, outputs):
        want = sum(n for i, n in enumerate(SIZES) if i not in frozen) / total
        number = _as_number(got)
        expect(number is not None, f"return a number, not {type(got).__name__}",
               "a Python float, a NumPy scalar or a one-element tensor all work")
        got = number
        expect(not (want > 0 and abs(got - 100 * want) < 1e-6),
               "you returned a percentage", "return a fraction between 0 and 1")
        expect(not (abs(want - 1) > 1e-9 and abs(got - (1 - want)) < 1e-6),
               "you returned the frozen fraction", "count parameters with requires_grad=True")
        expect(abs(got - want) < 1e-6,
               f"with layers {list(frozen)} frozen you returned {got:.4f}",
               "count scalar parameters with `p.numel()`, not parameter tensors or layers, "
               "and include BatchNorm's weight and bias")
    return "right with nothing, some and everything frozen"
