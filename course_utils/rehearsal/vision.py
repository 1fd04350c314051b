"""Stand-in torchvision backbones: the real classes (`ResNet` with bottleneck blocks as in
resnet50, `MobileNetV3`), shrunk, random weights; and the weights enum's own preprocessing.

The shrunk size also shrinks the input side: the enum's `ImageClassification` transform (same
class, mean, std, interpolation and resize/crop ratio) at 16 px instead of 224 px. A torchvision
ResNet spends about 0.5 GMAC per 224 px image in its stem and downsampling convolutions whatever
its width, and the full recipe's 60-step floor per run (thirteen runs in lesson 03's rehearsal)
would take many minutes on a CPU: measured 29 s per 50-image step at 224 px. At 16 px what is left
is the width: the 1x1 convolutions that widen each stage fourfold (to 2048 channels) cost 0.15 s per step
on one thread, the same blocks without that widening (512 features into `fc`) 0.033 s.
COURSE_REHEARSAL_SIZE=full uses `weights.transforms()` and the real resnet50 unchanged."""

from __future__ import annotations

from typing import Any

from torch import nn

from course_utils.rehearsal import vision_standin

SHRUNK_SIDE = 16


@vision_standin("resnet50")
def resnet50(size: str) -> nn.Module:
    """resnet50's class and block type; shrunk: one block per stage, a quarter of the inner width,
    no fourfold widening (512 features into `fc`, not 2048: code that reads the head's width works
    on both, code that types 2048 fails here as it would on any other backbone)."""
    from torchvision.models import resnet50 as real
    from torchvision.models.resnet import ResNet

    if size == "full":
        return real(weights=None)
    return ResNet(_narrow_bottleneck(), [1, 1, 1, 1], width_per_group=16)


def _narrow_bottleneck() -> type:
    """torchvision's Bottleneck without its fourfold output widening."""
    from torchvision.models.resnet import Bottleneck

    return type("NarrowBottleneck", (Bottleneck,), {"expansion": 1})


@vision_standin("mobilenet_v3_small")
def mobilenet_v3_small(size: str) -> nn.Module:
    """mobilenet_v3_small at a quarter of its width when shrunk."""
    from torchvision.models import mobilenet_v3_small as real

    return real(weights=None) if size == "full" else real(weights=None, width_mult=0.25)


def transforms(weights: Any, size: str):
    """`weights.transforms()` (nothing is downloaded), resized to SHRUNK_SIDE unless size is full."""
    transform = weights.transforms()
    if size == "full":
        return transform
    scale = SHRUNK_SIDE / transform.crop_size[0]
    transform.crop_size = [SHRUNK_SIDE]
    transform.resize_size = [round(side * scale) for side in transform.resize_size]
    return transform
