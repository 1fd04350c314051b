"""Local stand-ins for what the full profile loads from the hub, used by `course_utils.hub` in the
full-profile rehearsal (`course run --profile full --rehearsal`).

A stand-in has the real class, config and features of the thing it replaces, shrunk only as far
as a 2-core CPU needs, with random weights: it proves that the full code runs and that shapes and
flows hold, not what a model learns. `COURSE_REHEARSAL_SIZE=full` builds the same stand-ins at the
real sizes (random full-size weights), for a rehearsal on a GPU that measures memory.

Adding a stand-in for a new lesson (three registries, one decorator each):

- a hub checkpoint: a function `(size, folder) -> None` that writes a model and its tokenizer to
  `folder` with `save_pretrained`, decorated with `@checkpoint("org/name")`; lessons get the folder
  from `course_utils.hub.model_source("org/name")` and load it with the usual `from_pretrained`;
- a dataset: a function `() -> datasets.DatasetDict` with the real split names and `Features`,
  decorated with `@dataset_standin("org/name")`; write next to it where the schema was read from;
- a torchvision backbone: a function `(size) -> nn.Module` decorated with `@vision_standin(name)`.

Put them in a module of this package and add that module to `STANDIN_MODULES`. Loading a name with
no stand-in in the rehearsal raises `KeyError` naming this docstring.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Callable

from course_utils.profile import cache_dir, cache_entry

SIZES = ("shrunk", "full")
VERSION = 2  # bump when a stand-in changes, so cached stand-in checkpoints are rebuilt
STANDIN_MODULES = ("course_utils.rehearsal.models", "course_utils.rehearsal.datasets",
                   "course_utils.rehearsal.vision")

_CHECKPOINTS: dict[str, Callable[[str, Path], None]] = {}
_DATASETS: dict[str, Callable[[], Any]] = {}
_VISION: dict[str, Callable[[str], Any]] = {}


def size() -> str:
    """`shrunk` (default: CPU-sized configs) or `full` (real sizes), from COURSE_REHEARSAL_SIZE."""
    value = os.environ.get("COURSE_REHEARSAL_SIZE", "").strip().lower() or "shrunk"
    if value not in SIZES:
        raise ValueError(f"COURSE_REHEARSAL_SIZE={value!r}: choose one of {', '.join(SIZES)}")
    return value


def kernel_environment() -> dict[str, str]:
    """Environment for a rehearsal kernel: the switch, and one CPU thread for the shrunk models
    (tiny matrices on several threads wait for each other: measured 1.5 s against 0.03 s per
    training step of the DistilBERT stand-in on a busy 2-core machine)."""
    env = {"COURSE_REHEARSAL": "1"}
    if size() == "shrunk":
        env["OMP_NUM_THREADS"] = "1"
    return env


def checkpoint(name: str) -> Callable:
    """Register a function `(size, folder)` that writes the stand-in checkpoint for hub id `name`."""
    def register(build: Callable[[str, Path], None]) -> Callable[[str, Path], None]:
        _CHECKPOINTS[name] = build
        return build
    return register


def dataset_standin(name: str) -> Callable:
    """Register a function `()` returning the stand-in `DatasetDict` for hub dataset `name`."""
    def register(build: Callable[[], Any]) -> Callable[[], Any]:
        _DATASETS[name] = build
        return build
    return register


def vision_standin(name: str) -> Callable:
    """Register a function `(size)` returning the stand-in torchvision model `name`."""
    def register(build: Callable[[str], Any]) -> Callable[[str], Any]:
        _VISION[name] = build
        return build
    return register


def _lookup(registry: dict[str, Callable], name: str, kind: str) -> Callable:
    for module in STANDIN_MODULES:
        importlib.import_module(module)
    if name not in registry:
        raise KeyError(f"the rehearsal has no stand-in for the {kind} {name!r}: add one in "
                       f"course_utils/rehearsal/ (see that package's docstring); known: "
                       f"{', '.join(sorted(registry))}")
    return registry[name]


def checkpoint_dir(name: str) -> Path:
    """The folder of the stand-in checkpoint for `name`, built once and cached per size."""
    build = _lookup(_CHECKPOINTS, name, "checkpoint")
    parent = cache_dir("rehearsal", f"v{VERSION}-{size()}")
    folder = parent / name.replace("/", "--")
    if not (folder / "config.json").exists():
        with cache_entry(folder) as scratch:
            build(size(), scratch)
    return folder


def dataset(name: str) -> Any:
    """The stand-in `DatasetDict` for hub dataset `name`."""
    return _lookup(_DATASETS, name, "dataset")()


def vision_model(name: str) -> Any:
    """The stand-in torchvision model `name` (random weights), at the rehearsal's size."""
    return _lookup(_VISION, name, "torchvision model")(size())


def vision_transforms(weights: Any) -> Callable:
    """`weights.transforms()`, resized to the shrunk stand-ins' input side unless size is full."""
    from course_utils.rehearsal.vision import transforms

    return transforms(weights, size())
