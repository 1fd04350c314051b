"""Pretrained CNN backbones and the surgery transfer learning needs: which blocks exist, freezing
and unfreezing them, replacing the head, discriminative learning rates, parameter counts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock



# ---------------------------------------------------------------- the tiny pretrained source
class TinyResNet(nn.Module):
    """A ResNet in miniature for 8x8 digits: the same attribute names as torchvision's ResNet
    (conv1, bn1, relu, maxpool, layer1.., avgpool, fc) and its real `BasicBlock`s, so every
    function below treats it exactly like ResNet50."""

    def __init__(self, num_classes: int = 5, widths: tuple[int, ...] = (16, 32, 64),
                 in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()  # 8x8 inputs are too small to pool in the stem
        inplanes = widths[0]
        for i, width in enumerate(widths, start=1):
            stride = 1 if i == 1 else 2
            down = None
            if stride != 1 or inplanes != width:
                down = nn.Sequential(nn.Conv2d(inplanes, width, 1, stride, bias=False),
                                     nn.BatchNorm2d(width))
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(inplanes, width, stride, down)))
            inplanes = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        self.depth = len(widths)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.depth + 1):
            x = getattr(self, f"layer{i}")(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@dataclass(frozen=True)
class TinyWeights:
    """Stands in for a torchvision weights enum: a checkpoint plus the preprocessing it expects."""

    mean: float
    std: float

    def transforms(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Normalise exactly as during pretraining (what `weights.transforms()` does for ImageNet)."""
        mean, std = self.mean, self.std
        return lambda image: (image - mean) / std


def config_hash(config: dict) -> str:
    """A short stable key for a training recipe, so a cached checkpoint is reused only when the
    recipe that produced it is unchanged."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


# ---------------------------------------------------------------- blocks and heads
def head(model: nn.Module) -> nn.Module:
    """The classification head: `fc` on ResNets, `classifier` on MobileNet/EfficientNet."""
    for attr in ("fc", "classifier"):
        if hasattr(model, attr):
            return getattr(model, attr)
    raise TypeError(f"don't know where the head of a {type(model).__name__} is")


def blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The backbone's meaningful blocks, input side first, head excluded. ResNet: the stem
    (conv1+bn1) then layer1..layerK. MobileNet/EfficientNet: each entry of `features`. Pooling,
    ReLU and the head are not blocks: they hold no weights of their own to unfreeze (or, for the
    head, are always trained)."""
    if hasattr(model, "layer1"):
        found = [("stem", nn.ModuleList([model.conv1, model.bn1]))]
        i = 1
        while hasattr(model, f"layer{i}"):
            found.append((f"layer{i}", getattr(model, f"layer{i}")))
            i += 1
        return found
    if hasattr(model, "features") and isinstance(model.features, nn.Sequential):
        return [(f"features.{i}", m) for i, m in enumerate(model.features)
                if any(True for _ in m.parameters())]
    raise TypeError(f"don't know the blocks of a {type(model).__name__}")


def set_trainable(module: nn.Module, trainable: bool) -> None:
    """Switch gradients on or off for every parameter of a module."""
    for p in module.parameters():
        p.requires_grad = trainable


def freeze_backbone(model: nn.Module) -> nn.Module:
    """Feature extraction: nothing learns except the head."""
    set_trainable(model, False)
    set_trainable(head(model), True)
    return model


def unfreeze_last_blocks(model: nn.Module, n: int) -> list[str]:
    """Train the head plus the last `n` meaningful blocks, freeze everything else; returns the
    names of the blocks now trainable. n=0 is feature extraction; n=len(blocks) is everything."""
    if n < 0:
        raise ValueError("n must be >= 0")
    freeze_backbone(model)
    chosen = blocks(model)[-n:] if n else []
    for _, block in chosen:
        set_trainable(block, True)
    return [name for name, _ in chosen]


def naive_unfreeze_last_children(model: nn.Module, n: int) -> list[str]:
    """The common `list(model.children())[-n:]` recipe, kept only to show what goes wrong: the
    children include pooling (no weights) and the head, so "last 2 layers" may mean head only
    on a ResNet and the whole network on a MobileNet."""
    set_trainable(model, False)
    named = list(model.named_children())[-n:]
    for _, child in named:
        set_trainable(child, True)
    return [name for name, _ in named]


def trainable_blocks(model: nn.Module) -> list[str]:
    """Names of the blocks with at least one trainable parameter, to see what a recipe did."""
    return [name for name, block in blocks(model) if any(p.requires_grad for p in block.parameters())]


def make_head(in_features: int, num_classes: int, hidden: int | None = None,
              dropout: float = 0.5) -> nn.Module:
    """A fresh classification head: one Linear layer, or Linear-ReLU-Dropout-Linear when `hidden`
    is given (the common "small MLP head")."""
    if hidden is None:
        return nn.Linear(in_features, num_classes)
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, num_classes))


def head_in_features(model: nn.Module) -> int:
    """Width of the feature vector that enters the head (2048 for ResNet50, 576 for MobileNetV3-S)."""
    old = head(model)
    first = old if isinstance(old, nn.Linear) else next(m for m in old.modules()
                                                         if isinstance(m, nn.Linear))
    return first.in_features


def replace_head(model: nn.Module, num_classes: int, hidden: int | None = None,
                 dropout: float = 0.5, seed: int = 0) -> nn.Module:
    """Swap the pretrained head for a new one sized for `num_classes` (new layers are trainable
    by default); returns the model."""
    torch.manual_seed(seed)
    new = make_head(head_in_features(model), num_classes, hidden, dropout)
    setattr(model, "fc" if hasattr(model, "fc") else "classifier", new)
    return model


def param_groups(model: nn.Module, head_lr: float, decay: float = 0.3) -> list[dict]:
    """Discriminative learning rates: the head at `head_lr`, the last block at head_lr*decay, the
    one before at head_lr*decay**2, ...; frozen parameters are left out. Early blocks hold generic
    features (edges, strokes) worth keeping, so they move least."""
    groups = [{"name": "head", "lr": head_lr,
               "params": [p for p in head(model).parameters() if p.requires_grad]}]
    for depth, (name, block) in enumerate(reversed(blocks(model)), start=1):
        params = [p for p in block.parameters() if p.requires_grad]
        if params:
            groups.append({"name": name, "lr": head_lr * decay ** depth, "params": params})
    return [g for g in groups if g["params"]]


def keep_frozen_batchnorm_in_eval(model: nn.Module) -> None:
    """Call after `model.train()`: BatchNorm layers whose weights are frozen also stop updating
    their running mean/variance, which a few dozen target images would otherwise overwrite."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if not any(p.requires_grad for p in m.parameters()):
                m.eval()
