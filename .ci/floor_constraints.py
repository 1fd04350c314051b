"""Print `name==version` for every lower bound in pyproject.toml: the floor-versions constraints.

torch and torchvision are left out on purpose: the floor run reuses the installed wheels (a second
CUDA torch download would not fit CI's budget), so their bounds are not exercised by it.
"""

import re
import sys
import tomllib
from pathlib import Path

REUSED = {"torch", "torchvision"}
ROOT = Path(__file__).resolve().parent.parent


def floor_pins(extras: tuple[str, ...] = ("grader",)) -> list[str]:
    """`name==lower-bound` for the runtime dependencies and the given extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in extras:
        specs += project["optional-dependencies"][extra]
    pins = []
    for spec in specs:
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)", spec)
        if match is None:
            continue  # a self-reference such as finetune-course[grader], or no lower bound
        name, version = match.group(1), match.group(3)
        if name.lower() not in REUSED:
            pins.append(f"{name}=={version}")
    return pins


if __name__ == "__main__":
    sys.stdout.write("\n".join(floor_pins()) + "\n")
