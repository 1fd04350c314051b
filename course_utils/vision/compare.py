"""The four transfer-learning recipes side by side (scratch, feature extraction, full fine-tuning,
gradual unfreezing) over several labelled-set sizes: lessons 02-03 and the benchmark run this."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable

from torch import nn
from tqdm.auto import tqdm

from course_utils.profile import seed_everything
from course_utils.torch_utils import count_parameters
from course_utils.vision.models import (blocks, freeze_backbone, replace_head, set_trainable,
                                        trainable_blocks, unfreeze_last_blocks)
from course_utils.vision.data import ImageSplit
from course_utils.vision.train import History, epochs_for, fit

METHODS = ("scratch", "feature extraction", "full fine-tuning", "gradual unfreezing")


@dataclass(frozen=True)
class Recipe:
    """Learning rates and budget shared by every method so that only the method differs."""

    epochs: int = 6
    min_steps: int = 40
    batch_size: int = 32
    head_lr: float = 1e-2     # a new head learns fast from frozen features
    body_lr: float = 3e-3     # whole-network training (scratch and full fine-tuning)
    decay: float = 0.3        # discriminative factor per block in gradual unfreezing
    stages: tuple[int, ...] = (0, 1, 2, 99)  # blocks unfrozen at each stage (99: all)
    hidden: int | None = None
    precision: str = "fp32"
    eval_every: int = 1       # test-set passes are costly on ResNet50: evaluate less often


TINY_RECIPE = Recipe()
FULL_RECIPE = Recipe(epochs=3, min_steps=60, batch_size=64, head_lr=1e-3, body_lr=1e-4,
                     decay=0.5, stages=(0, 1, 2, 99), hidden=256, precision="fp16",
                     eval_every=10)


@dataclass
class Row:
    """One measured run: which method, how many labels, and what it cost and gave."""

    method: str
    per_class: int
    seed: int
    accuracy: float
    trainable: int
    total: int
    seconds_per_epoch: float
    epochs: int


def gradual_unfreezing(model: nn.Module, train: ImageSplit, test: ImageSplit, recipe: Recipe,
                       epochs: int, seed: int = 0, device: str = "cpu", progress: bool = False,
                       history: History | None = None,
                       unfreeze: Callable[[nn.Module, int], object] | None = None) -> History:
    """Head first, then the last block, then the last two, ... then everything; each stage
    trains `epochs // len(stages)` epochs (at least 1) with smaller learning rates for earlier
    blocks. `trainable` in the history is the parameter count of each stage. `unfreeze(model, n)`
    opens the head and the last n residual stages for the partial stages (lesson 03 passes the
    learner's version); the last stage always opens every block."""
    history = history if history is not None else History()
    per_stage = max(1, epochs // len(recipe.stages))
    for n in recipe.stages:
        n = min(n, len(blocks(model)))
        if unfreeze is not None and n < len(blocks(model)):
            unfreeze(model, n)
            opened = [name for name in trainable_blocks(model) if name != "head"]
        else:
            opened = unfreeze_last_blocks(model, n)
        lr = recipe.head_lr if n == 0 else recipe.body_lr
        label = "head only" if n == 0 else f"+{','.join(opened)}" if len(opened) <= 2 else "all"
        fit(model, train, test, per_stage, lr, decay=recipe.decay, batch_size=recipe.batch_size,
            seed=seed, device=device, history=history, stage=label, progress=progress,
            precision=recipe.precision, eval_every=recipe.eval_every)
    return history


def run_method(method: str, make_model: Callable[[bool], nn.Module], train: ImageSplit,
               test: ImageSplit, recipe: Recipe = TINY_RECIPE, seed: int = 0, device: str = "cpu",
               progress: bool = False) -> tuple[nn.Module, History]:
    """Train one method on one labelled set; `make_model(pretrained)` builds the backbone."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {METHODS}")
    seed_everything(seed)
    model = make_model(method != "scratch")
    replace_head(model, len(train.names), hidden=recipe.hidden, seed=seed)
    epochs = epochs_for(len(train), recipe.batch_size, recipe.epochs, recipe.min_steps)
    common = dict(batch_size=recipe.batch_size, seed=seed, device=device, progress=progress,
                  precision=recipe.precision, eval_every=recipe.eval_every)
    if method == "feature extraction":
        freeze_backbone(model)
        return model, fit(model, train, test, epochs, recipe.head_lr, stage=method, **common)
    if method == "gradual unfreezing":
        return model, gradual_unfreezing(model, train, test, recipe, epochs, seed, device, progress)
    set_trainable(model, True)
    return model, fit(model, train, test, epochs, recipe.body_lr, stage=method, **common)


def compare(make_model: Callable[[bool], nn.Module], pool: ImageSplit, test: ImageSplit,
            sizes: tuple[int, ...] = (3, 10, 30), seeds: tuple[int, ...] = (0,),
            methods: tuple[str, ...] = METHODS, recipe: Recipe = TINY_RECIPE,
            device: str = "cpu") -> list[Row]:
    """Every method on class-balanced labelled sets of each size (per class), for each seed:
    accuracy on the same test set, trainable parameters (largest stage), seconds per epoch."""
    rows = []
    final_only = replace(recipe, eval_every=10**9)
    runs = [(n, s, m) for n in sizes for s in seeds for m in methods]
    for n, seed, method in tqdm(runs, desc="methods x sizes"):
        train = pool.subset(n, seed=seed)
        # only the final accuracy is reported: skip the per-epoch test passes
        model, history = run_method(method, make_model, train, test, final_only, seed, device)
        rows.append(Row(method, n, seed, history.final_accuracy,
                        max(e.trainable for e in history.epochs), count_parameters(model).total,
                        history.seconds_per_epoch, len(history.epochs)))
    return rows


def table(rows: list[Row]):
    """Mean accuracy (and spread over seeds), trainable parameters and seconds/epoch per method
    and labelled-set size, as a pandas DataFrame."""
    import pandas as pd

    df = pd.DataFrame([asdict(r) for r in rows])
    out = df.groupby(["per_class", "method"], sort=False).agg(
        accuracy=("accuracy", "mean"), accuracy_std=("accuracy", "std"),
        trainable=("trainable", "max"), total=("total", "max"),
        seconds_per_epoch=("seconds_per_epoch", "mean"), seeds=("seed", "nunique"))
    return out.round({"accuracy": 3, "accuracy_std": 3, "seconds_per_epoch": 4})


def plot(rows: list[Row], title: str = "") -> None:
    """Accuracy against labelled examples per class, one line per method."""
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame([asdict(r) for r in rows]).groupby(["method", "per_class"])["accuracy"].mean()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for method in METHODS:
        if method in df.index.get_level_values(0):
            series = df.loc[method]
            ax.plot(series.index, series.values, marker="o", label=method)
    ax.set_xscale("log")
    sizes = sorted({r.per_class for r in rows})
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("labelled examples per class")
    ax.set_ylabel("test accuracy")
    ax.set_title(title or "transfer-learning methods vs labelled-set size")
    ax.legend()
    plt.tight_layout()
    plt.show()


@dataclass
class TransferSetup:
    """Everything a transfer lesson needs for its profile, resolved in one call."""

    backbone: str
    pool: ImageSplit
    test: ImageSplit
    sizes: tuple[int, ...]
    recipe: Recipe
    device: str

    def make_model(self, pretrained: bool = True) -> nn.Module:
        """A fresh copy of the backbone: pretrained weights, or the same architecture at random."""
        from course_utils.vision.backbones import load_backbone

        return load_backbone(self.backbone, pretrained=pretrained, progress=False)[0]

    def describe(self) -> str:
        return (f"backbone={self.backbone} | target classes={self.pool.names} | "
                f"labelled pool={len(self.pool)} | test={len(self.test)} | "
                f"labelled-set sizes per class={self.sizes}")


def transfer_setup(profile: str, device: str = "cpu") -> TransferSetup:
    """tiny: the TinyResNet pretrained on digits 0-4 (x4 rotations), target digits 5-9.
    full: ResNet50 with ImageNet weights (IMAGENET1K_V2), target CIFAR-10 from the hub."""
    from course_utils.vision.backbones import load_backbone
    from course_utils.vision.data import digits_task, hub_image_task

    if profile == "tiny":
        backbone, sizes, recipe = "tiny_resnet", (2, 5, 20), TINY_RECIPE
        pool, test = digits_task()
    else:
        backbone, sizes, recipe = "resnet50", (5, 25, 100), FULL_RECIPE
        pool, test = hub_image_task()
    # Labelled-set sizes the pool can supply (a small hub dataset may hold fewer per class).
    smallest = min(pool.counts().values())
    sizes = tuple(n for n in sizes if n <= smallest)
    if not sizes:
        raise ValueError(f"the labelled pool has only {smallest} images in some class")
    _, transform = load_backbone(backbone)  # pretrained by default: trains or downloads it once
    return TransferSetup(backbone, pool.with_transform(transform),
                         test.with_transform(transform), sizes, recipe, str(device))
