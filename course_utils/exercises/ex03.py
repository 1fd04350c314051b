"""Checks for lesson 03 (gradual unfreezing): unfreezing the last N blocks, discriminative LRs."""

from __future__ import annotations

import torch
from torch import nn

from ..checks import checker, expect, expect_callable, judge
from ..vision.models import TinyResNet, unfreeze_last_blocks

LABELS = [("a TinyResNet", ["layer1", "layer2", "layer3"]),
          ("a torchvision resnet18", ["layer1", "layer2", "layer3", "layer4"])]


def _models() -> list[tuple[str, nn.Module, list[str]]]:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    models = [TinyResNet(num_classes=5, widths=(16, 32, 128)), resnet18(weights=None)]
    return [(label, model, layers) for (label, layers), model in zip(LABELS, models)]


def _steps(layers: list[str]) -> list[int]:
    return [0, 1, 2, len(layers), 1]


@checker("03.1", "unfreeze the last N blocks", answer="unfreeze_last")
def probe_unfreeze(unfreeze_last) -> list:
    expect_callable(unfreeze_last, "unfreeze_last")
    out = []
    for _, model, layers in _models():
        for p in model.parameters():  # start from everything trainable: n must also freeze
            p.requires_grad = True
        tops = []
        for n in _steps(layers):
            unfreeze_last(model, n)
            tops.append(sorted({name.split(".")[0] for name, p in model.named_parameters()
                                if p.requires_grad}))
        out.append(tops)
    return out


@judge("03.1")
def judge_unfreeze(states: list) -> str:
    expect(len(states) == len(LABELS), "your answer gave no result per model")
    for (label, layers), tops in zip(LABELS, states):
        expect(len(tops) == len(_steps(layers)), "your answer gave no result per n")
        for n, trainable in zip(_steps(layers), tops):
            got = set(trainable)
            want = set(layers[len(layers) - n:]) | {"fc"} if n else {"fc"}
            expect("fc" in got, f"on {label} with n={n} the head `fc` is frozen",
                   "the head is always trained: it is new and knows nothing yet")
            missing, extra = sorted(want - got), sorted(got - want)
            expect(not (n == 0 and set(layers) <= got),
                   f"on {label} with n=0 every residual stage is trainable, not just the head",
                   "`stages[-0:]` is the WHOLE list (-0 == 0): treat n = 0 separately, or slice "
                   "with `stages[len(stages) - n:]`")
            expect(not missing, f"on {label} with n={n}, {missing} should be trainable but "
                   f"are frozen (trainable: {sorted(got)})",
                   "count only the residual stages layer1, layer2, ...: "
                   "`list(model.children())[-n:]` also counts `avgpool` (no weights) and `fc`, "
                   "so it unfreezes fewer real blocks than asked")
            expect(not extra, f"on {label} with n={n}, {extra} are trainable but should be "
                   "frozen", "freeze everything first, so that a smaller n after a larger one "
                   "freezes blocks again; the stem (conv1, bn1) stays frozen")
    return "right for n = 0, 1, 2 and all, on a tiny ResNet and resnet18, and n can go down again"


@checker("03.2", "discriminative learning rates", answer="discriminative_groups")
def probe_groups(discriminative_groups) -> list:
    expect_callable(discriminative_groups, "discriminative_groups")
    out = []
    for _, model, _ in _models():
        unfreeze_last_blocks(model, 2)
        groups = discriminative_groups(model, 1e-2, 0.5)
        expect(isinstance(groups, list) and all(isinstance(g, dict) for g in groups),
               "return a list of dicts, each with 'params' and 'lr'",
               "that is the format `torch.optim.AdamW(groups)` accepts")
        expect(all("params" in g and "lr" in g for g in groups),
               "every group needs a 'params' and an 'lr' key")
        name_of = {id(p): n for n, p in model.named_parameters()}
        described = []
        for g in groups:
            params = list(g["params"])
            described.append({"lr": float(g["lr"]), "params": [name_of.get(id(p), "?") for p in params]})
            g["params"] = params
        torch.optim.AdamW(groups)
        out.append(described)
    return out


@judge("03.2")
def judge_groups(per_model: list) -> str:
    expect(len(per_model) == len(LABELS), "your answer gave no result per model")
    for (label, model, layers), groups in zip(_models(), per_model):
        unfreeze_last_blocks(model, 2)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        lr_of: dict[str, set[float]] = {}
        seen: list[str] = []
        for g in groups:
            seen += g["params"]
            for name in g["params"]:
                lr_of.setdefault(name.split(".")[0], set()).add(float(g["lr"]))
        expect(len(seen) == len(set(seen)), "a parameter appears in two groups",
               "give every trainable parameter exactly one group")
        frozen = set(seen) - trainable
        expect(not frozen, f"on {label} frozen parameters are in the groups",
               "keep only parameters with requires_grad=True")
        expect(trainable <= set(seen), f"on {label} some trainable parameters are in no group",
               "the head and each unfrozen block need a group")
        expect(all(len(v) == 1 for v in lr_of.values()), "a block is split across learning rates",
               "one learning rate per block")
        lr = {k: next(iter(v)) for k, v in lr_of.items()}
        last, before = layers[-1], layers[-2]
        expect(abs(lr["fc"] - 1e-2) < 1e-12, f"the head got lr={lr['fc']:g}, not head_lr",
               "the head trains at head_lr itself")
        expect(lr[last] < lr["fc"] and lr[before] < lr[last],
               f"learning rates are not decreasing towards the input: fc={lr['fc']:g}, "
               f"{last}={lr[last]:g}, {before}={lr[before]:g}",
               "earlier blocks hold more general features and should move less")
        expect(abs(lr[last] - 5e-3) < 1e-12 and abs(lr[before] - 2.5e-3) < 1e-12,
               f"with head_lr=1e-2 and decay=0.5 you gave {last} lr={lr[last]:g} and {before} "
               f"lr={lr[before]:g}", "multiply by `decay` once per block, counting from the head")
    return "one group per trainable block, frozen ones left out, rates decay towards the input"
