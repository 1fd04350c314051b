"""Image data for the transfer-learning lessons: scikit-learn's digits split into a source task
and a target task (tiny), or a labelled image dataset from the Hugging Face hub (full)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from course_utils.sampling import balanced_indices

SOURCE_DIGITS = (0, 1, 2, 3, 4)
TARGET_DIGITS = (5, 6, 7, 8, 9)
FULL_DATASET = "uoft-cs/cifar10"  # 10 classes, 32x32 photos; parquet on the hub, no script


@dataclass
class ImageSplit(Dataset):
    """Images, integer labels and class names, plus the transform the model expects: the same
    object in both profiles, so training code never asks which profile it runs in."""

    images: Sequence[Any]
    labels: list[int]
    names: list[str]
    transform: Callable[[Any], torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self.images[i]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[i]

    def with_transform(self, transform: Callable[[Any], torch.Tensor]) -> "ImageSplit":
        """The same images seen through a model's preprocessing (e.g. `weights.transforms()`)."""
        return ImageSplit(self.images, self.labels, self.names, transform)

    def counts(self) -> dict[str, int]:
        """Examples per class, to see how few labels a run really had."""
        c = Counter(self.labels)
        return {name: c.get(i, 0) for i, name in enumerate(self.names)}

    def subset(self, per_class: int, seed: int = 0) -> "ImageSplit":
        """A class-balanced labelled set of `per_class` examples per class, chosen by `seed`:
        the "we only labelled a handful of images" scenario."""
        return self.select(balanced_indices(self.labels, self.names, per_class, seed))

    def select(self, indices: Sequence[int]) -> "ImageSplit":
        """The examples at `indices`, keeping names and transform."""
        images = _Indexed(self.images, list(indices))
        return ImageSplit(images, [self.labels[i] for i in indices], self.names, self.transform)


class _Indexed(Sequence):
    """A lazy view of some positions of a sequence (hub datasets decode images on access)."""

    def __init__(self, base: Sequence[Any], indices: list[int]) -> None:
        self.base, self.indices = base, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):  # type: ignore[override]
        return self.base[self.indices[i]]


def digits_task(digits: Sequence[int] = TARGET_DIGITS, test_fraction: float = 0.4,
                seed: int = 0) -> tuple[ImageSplit, ImageSplit]:
    """Real 8x8 handwritten digits (scikit-learn ships 1,797 of them) for the classes `digits`,
    relabelled 0..k-1, as a (train pool, test) pair; images are 1x8x8 tensors in [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images / 16.0, dtype=torch.float32).unsqueeze(1)
    keep = [i for i, y in enumerate(bunch.target) if int(y) in digits]
    rng = np.random.default_rng(seed)
    rng.shuffle(keep)
    relabel = {d: k for k, d in enumerate(digits)}
    labels = [relabel[int(bunch.target[i])] for i in keep]
    names = [str(d) for d in digits]
    n_test = int(round(test_fraction * len(keep)))
    test_idx, train_idx = range(n_test), range(n_test, len(keep))
    images = [x[i] for i in keep]
    train = ImageSplit([images[i] for i in train_idx], [labels[i] for i in train_idx], names)
    test = ImageSplit([images[i] for i in test_idx], [labels[i] for i in test_idx], names)
    return train, test


def hub_image_task(name: str = FULL_DATASET, test_size: int = 2000, seed: int = 0,
                   image_column: str | None = None,
                   label_column: str | None = None) -> tuple[ImageSplit, ImageSplit]:
    """A labelled image dataset from the Hugging Face hub (full profile) as a (train pool, test)
    pair of PIL images; attach the model's preprocessing with `with_transform`."""
    from datasets import load_dataset

    ds = load_dataset(name)
    train_ds = ds["train"]
    test_ds = ds["test"] if "test" in ds else ds["validation"]
    features = train_ds.features
    image_column = image_column or next(k for k, f in features.items()
                                        if type(f).__name__ == "Image")
    label_column = label_column or next(k for k, f in features.items()
                                        if type(f).__name__ == "ClassLabel")
    names = list(features[label_column].names)
    test_ds = test_ds.shuffle(seed=seed).select(range(min(test_size, len(test_ds))))

    def split(part) -> ImageSplit:
        images = _Column(part, image_column)
        return ImageSplit(images, [int(y) for y in part[label_column]], names)

    return split(train_ds), split(test_ds)


class _Column(Sequence):
    """One column of a hub dataset, decoded row by row: images are never all held in memory."""

    def __init__(self, ds, column: str) -> None:
        self.ds, self.column = ds, column

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i):  # type: ignore[override]
        image = self.ds[int(i)][self.column]
        return image.convert("RGB") if hasattr(image, "convert") else image


def show_images(split: ImageSplit, n: int = 10, title: str = "") -> None:
    """Plot the first `n` images of a split with their class names (1-channel or RGB)."""
    import matplotlib.pyplot as plt

    n = min(n, len(split))
    fig, axes = plt.subplots(1, n, figsize=(1.2 * n, 1.6))
    for ax, i in zip(np.atleast_1d(axes), range(n)):
        image = split.images[i]
        if isinstance(image, torch.Tensor):
            array = image.permute(1, 2, 0).numpy().squeeze()
        else:
            array = np.asarray(image)
        ax.imshow(array, cmap="gray_r" if array.ndim == 2 else None)
        ax.set_title(split.names[split.labels[i]], fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    plt.tight_layout()
    plt.show()
