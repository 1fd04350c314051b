"""Scratch vs feature extraction vs full fine-tuning vs gradual unfreezing, over labelled-set
sizes and seeds, in the current profile (tiny: TinyResNet pretrained on digits 0-4 -> digits 5-9;
full: ResNet50 IMAGENET1K_V2 -> CIFAR-10). Prints the table and the ratios that matter:
accuracy gain of transfer over scratch at the smallest size, and the per-epoch speed-up of
feature extraction over full fine-tuning.

    COURSE_PROFILE=tiny python benchmarks/vision_transfer.py --seeds 3
"""

from __future__ import annotations

import argparse

import pandas as pd

from course_utils.profile import setup
from course_utils.vision.compare import compare, table, transfer_setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()
    cfg = setup(models={"tiny": "TinyResNet (digits 0-4 source)", "full": "resnet50 IMAGENET1K_V2"},
                data={"tiny": "sklearn digits 5-9", "full": "uoft-cs/cifar10"},
                budgets={"tiny": "~1-2 min on 2 CPU cores", "full": "~1 h on a T4"},
                profile=args.profile)
    T = transfer_setup(cfg.profile, device=str(cfg.device))
    print(T.describe())
    rows = compare(T.make_model, T.pool, T.test, sizes=T.sizes, seeds=tuple(range(args.seeds)),
                   recipe=T.recipe, device=T.device)
    pd.set_option("display.width", 160)
    summary = table(rows)
    print(summary.to_string())
    acc = summary["accuracy"]
    small = T.sizes[0]
    for method in ("feature extraction", "full fine-tuning", "gradual unfreezing"):
        print(f"{small}/class: {method} - scratch = {acc[(small, method)] - acc[(small, 'scratch')]:+.3f}")
    spe = summary["seconds_per_epoch"]
    big = T.sizes[-1]
    print(f"{big}/class: seconds/epoch full fine-tuning / feature extraction = "
          f"{spe[(big, 'full fine-tuning')] / spe[(big, 'feature extraction')]:.2f}x")


if __name__ == "__main__":
    main()
