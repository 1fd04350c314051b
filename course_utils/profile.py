"""Profiles, devices, precision, seeding and caches: the first thing every notebook resolves."""

from __future__ import annotations

import os
import random
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PROFILES = ("tiny", "full")


def rehearsal() -> bool:
    """Whether this run is the full-profile rehearsal (`COURSE_REHEARSAL=1`): hub models and data
    are replaced by local stand-ins with random weights, so the full code runs offline."""
    return os.environ.get("COURSE_REHEARSAL", "").strip().lower() in {"1", "true", "yes"}


def cuda_available() -> bool:
    """Whether a CUDA GPU is usable; split out so tests can pretend either way."""
    return torch.cuda.is_available()


def resolve_profile(requested: str | None = None) -> str:
    """Pick `tiny` or `full`: explicit argument, then COURSE_PROFILE, then full on a CUDA GPU."""
    value = requested or os.environ.get("COURSE_PROFILE") or ""
    value = value.strip().lower()
    if value:
        if value not in PROFILES:
            raise ValueError(f"unknown profile {value!r}: choose one of {', '.join(PROFILES)}")
        return value
    return "full" if cuda_available() else "tiny"


def pick_device() -> torch.device:
    """The fastest device present, cuda then mps then cpu, so notebooks never hard-code one."""
    if cuda_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# Model families trained in bf16 whose maintainers report fp16 overflow (inf/NaN activations) and
# advise bf16, else fp32: QwenLM/Qwen3 issues #670 and #868 (Qwen2 fine-tuning and inference).
FP16_UNSAFE = ("qwen",)


def mixed_precision(device: torch.device | str, model: str | None = None) -> str:
    """`bf16`, `fp16` or `fp32` for training `model` on `device`: the one place the course picks a
    precision. bf16 needs compute capability >= 8.0 (Ampere); below that (a T4 is 7.5) fp16, except
    for model families trained in bf16 that overflow in fp16 (`FP16_UNSAFE`), which compute in fp32."""
    device = torch.device(device)
    if device.type != "cuda":
        return "fp32"
    major, _ = torch.cuda.get_device_capability(device)
    if major >= 8:
        return "bf16"
    if model is not None and any(family in model.lower() for family in FP16_UNSAFE):
        return "fp32"
    return "fp16"


def native_bf16(device: torch.device | str = "cuda") -> bool:
    """Whether the GPU computes bf16 natively (compute capability >= 8.0), not by emulation, which
    `torch.cuda.is_bf16_supported()` also counts (it says True on a T4)."""
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype for a precision name from `mixed_precision`."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def resolve_seed(default: int = 0) -> int:
    """The seed a lesson runs with: COURSE_SEED when set (so anyone can rerun a lesson with another
    seed and see which of its numbers are robust), else the lesson's own `default`."""
    value = os.environ.get("COURSE_SEED", "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"COURSE_SEED must be a whole number, not {value!r}") from None


def seed_everything(seed: int = 0) -> int:
    """Seed python, numpy and torch so a rerun of a notebook prints the same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return seed


def cache_dir(*parts: str) -> Path:
    """Where the course keeps checkpoints it trains itself: COURSE_CACHE, else the user cache dir."""
    root = os.environ.get("COURSE_CACHE")
    if root:
        base = Path(root).expanduser()
    else:
        from platformdirs import user_cache_dir

        base = Path(user_cache_dir("finetune-course"))
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def cache_entry(path: Path) -> Iterator[Path]:
    """A scratch sibling of cache entry `path` (a file or a folder) to build it in, moved into
    place in one rename when the block ends: a process that finds `path` never reads half an entry,
    and two processes building the same entry at once both finish (the first copy stays)."""
    scratch = path.parent / f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp"
    _remove(scratch)
    try:
        yield scratch
        try:
            os.replace(scratch, path)  # a folder may replace only an empty one
        except OSError:
            if not (path.is_dir() and any(path.iterdir())):
                raise
    finally:
        _remove(scratch)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


@dataclass(frozen=True)
class Setup:
    """What a notebook runs on; printed as one line so nobody wonders which model or data ran."""

    profile: str
    device: torch.device
    precision: str
    seed: int
    model: str
    data: str
    budget: str

    def seeds(self, n: int) -> tuple[int, ...]:
        """`n` consecutive seeds starting at this lesson's seed, for a comparison repeated over
        several samples and initialisations: COURSE_SEED moves all of them together."""
        return tuple(range(self.seed, self.seed + n))

    def describe(self) -> str:
        """The one-line summary every notebook prints in its first code cell."""
        return (
            f"profile={self.profile} | device={self.device.type} ({self.precision}) | "
            f"seed {self.seed} | model={self.model} | data={self.data} | "
            f"expected time: {self.budget}"
        )


def setup(models: dict[str, str], data: dict[str, str], budgets: dict[str, str],
          seed: int = 0, profile: str | None = None, quiet: bool = False) -> Setup:
    """Resolve profile, device, precision and seed at the top of a lesson and print them; the
    seed is `seed` unless COURSE_SEED overrides it, and the lesson derives every seed from it."""
    name = resolve_profile(profile)
    device = pick_device() if name == "full" else torch.device("cpu")
    result = Setup(name, device, mixed_precision(device, models[name]),
                   seed_everything(resolve_seed(seed)),
                   models[name], data[name], budgets[name])
    if not quiet:
        print(result.describe())
    return result
