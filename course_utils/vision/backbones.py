"""Pretrained backbones for the transfer-learning lessons: torchvision's ImageNet weights through
the hub boundary, or the tiny profile's own source model, pretrained on digits 0-4 and cached."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from course_utils.profile import cache_dir, cache_entry
from course_utils.vision.data import SOURCE_DIGITS, digits_task
from course_utils.vision.models import TinyResNet, TinyWeights, config_hash
from course_utils.vision.train import fit, with_turns

BACKBONES = ("tiny_resnet", "resnet50", "mobilenet_v3_small")
SOURCE_RECIPE = {"digits": list(SOURCE_DIGITS), "widths": [16, 32, 128], "epochs": 10,
                 "lr": 1e-2, "batch_size": 128, "seed": 0, "shift": 1, "turns": 4,
                 "version": 1}


# ---------------------------------------------------------------- loading backbones
def load_backbone(name: str, pretrained: bool = True, seed: int = 0,
                  progress: bool = True) -> tuple[nn.Module, Callable]:
    """A backbone and its preprocessing. `resnet50` / `mobilenet_v3_small` load ImageNet weights
    through torchvision's `weights=` enums (download on first use); `tiny_resnet` loads the
    digits-0-4 checkpoint the course pretrains and caches. `pretrained=False` gives the same
    architecture with random weights: the from-scratch baseline."""
    if name in ("resnet50", "mobilenet_v3_small"):
        from torchvision.models import MobileNet_V3_Small_Weights, ResNet50_Weights

        from course_utils.hub import vision_model, vision_transforms

        weights = {"resnet50": ResNet50_Weights.IMAGENET1K_V2,
                   "mobilenet_v3_small": MobileNet_V3_Small_Weights.IMAGENET1K_V1}[name]
        model = vision_model(name, weights=weights if pretrained else None)
        return model, vision_transforms(weights)
    if name == "tiny_resnet":
        if pretrained:
            return pretrained_tiny_resnet(progress=progress)
        torch.manual_seed(seed)
        model, transform = pretrained_tiny_resnet(progress=progress, load=False)
        return model, transform
    raise ValueError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")


# ---------------------------------------------------------------- the tiny pretrained source
def digits_weights() -> TinyWeights:
    """Mean/std of the digit images in [0, 1]: the tiny model's `weights.transforms()`."""
    from sklearn.datasets import load_digits

    pixels = load_digits().images / 16.0
    return TinyWeights(round(float(pixels.mean()), 4), round(float(pixels.std()), 4))


def pretrained_tiny_resnet(progress: bool = True, load: bool = True,
                           recipe: dict | None = None) -> tuple[TinyResNet, object]:
    """The tiny profile's "ImageNet": a TinyResNet trained on digits 0-4 (a source task that
    shares strokes, not classes, with the target digits 5-9). Trained once in a few seconds and
    cached under `cache_dir("vision")`, keyed by a hash of the recipe. `load=False` returns the
    same architecture with random weights and the same preprocessing."""
    recipe = dict(recipe or SOURCE_RECIPE)
    weights = digits_weights()
    transform = weights.transforms()
    model = TinyResNet(num_classes=len(recipe["digits"]) * recipe["turns"],
                       widths=tuple(recipe["widths"]))
    if not load:
        return model, transform
    path = cache_dir("vision") / f"tiny_resnet-{config_hash(recipe)}.pt"
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        if progress:
            print(f"loaded the pretrained source model from the cache "
                  f"(digits {recipe['digits']}, source test accuracy {state['accuracy']:.3f})")
        return model, transform
    torch.manual_seed(recipe["seed"])
    train, test = digits_task(tuple(recipe["digits"]), test_fraction=0.2, seed=recipe["seed"])
    train, test = with_turns(train, recipe["turns"]), with_turns(test, recipe["turns"])
    model = TinyResNet(num_classes=len(train.names), widths=tuple(recipe["widths"]))
    train, test = train.with_transform(transform), test.with_transform(transform)
    history = fit(model, train, test, recipe["epochs"], recipe["lr"],
                  batch_size=recipe["batch_size"], seed=recipe["seed"], shift=recipe["shift"],
                  stage="pretraining on digits 0-4", progress=progress)
    with cache_entry(path) as scratch:
        torch.save({"model": model.state_dict(), "accuracy": history.final_accuracy,
                    "recipe": recipe}, scratch)
    if progress:
        print(f"pretrained the source model on digits {recipe['digits']} in "
              f"{sum(e.seconds for e in history.epochs):.1f} s: source test accuracy "
              f"{history.final_accuracy:.3f} (cached at {path.name})")
    return model, transform


