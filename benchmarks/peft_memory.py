"""Trainable parameters, training memory and step time of LoRA and QLoRA relative to full
fine-tuning, measured in one run on the course's causal LM (tiny on CPU, the 0.5B model on a GPU).

    python benchmarks/peft_memory.py [--steps 100] [--profile tiny|full]
"""

from __future__ import annotations

import argparse
import warnings

import torch

from course_utils.llm import causal_lm as clm
from course_utils.llm.methods import compare_methods, learning_rate
from course_utils.profile import mixed_precision, pick_device, resolve_profile, torch_dtype


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--profile", choices=("tiny", "full"), default=None,
                        help="default: COURSE_PROFILE, else full on a CUDA GPU")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    profile = resolve_profile(args.profile)
    device = pick_device() if profile == "full" else torch.device("cpu")
    train, test = clm.style_pairs(context=profile == "full")
    # each method at its own rate for this profile's model (tiny's rates would wreck a 0.5B model)
    results = {}
    for method in ("full", "lora", "qlora"):
        [results[method]] = compare_methods(
            train, test, methods=(method,), profile=profile, steps=args.steps, device=str(device),
            dtype=torch_dtype(mixed_precision(device, clm.FULL_CAUSAL_LM if profile == "full" else None)),
            lr=learning_rate(method, profile), progress=False)
    full = results["full"]
    memory = "peak_rss_mb" if device.type == "cpu" else "peak_rss_mb (cuda max allocated)"
    print(f"profile={profile} device={device.type} steps={args.steps}")
    print(f"{'method':8} {'trainable/full':>15} {'tensor mem/full':>16} {'peak/full':>10} "
          f"{'step time/full':>15} {'exact match':>12}")
    for name, r in results.items():
        print(f"{name:8} {r.trainable / full.trainable:15.4f} {r.tensor_mb / full.tensor_mb:16.3f} "
              f"{r.peak_rss_mb / max(full.peak_rss_mb, 1e-9):10.3f} "
              f"{r.sec_per_step / full.sec_per_step:15.3f} {r.exact_match:12.2f}")
    print(f"(peak = {memory}; on CPU with a 0.1M-parameter model it is allocator noise, "
          "tensor memory is the exact count of weights, gradients, optimizer state and activations)")


if __name__ == "__main__":
    main()
