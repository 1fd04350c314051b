"""The Colab set-up cell, rendered from the package metadata so the repository URL and version
live in one place (pyproject.toml) and every notebook installs the same thing."""

from __future__ import annotations

from importlib import metadata

from course_utils import __version__

DIST = "finetune-course"
TEMPLATE = '''\
# Set-up: only inside Google Colab, install this course's package (Colab's torch is kept as is).
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{requirement}"], check=True)'''


def repository_url() -> str:
    """The course repository, as declared under [project.urls] in pyproject.toml."""
    for entry in metadata.metadata(DIST).get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "repository":
            return url.strip()
    raise RuntimeError("pyproject.toml declares no Repository URL")


def install_requirement() -> str:
    """What Colab pip-installs: this package from the repository, at the tag of this version."""
    return f"{DIST} @ git+{repository_url()}@v{__version__}"


def setup_cell_source() -> str:
    """The source of cell 2 of every notebook."""
    return TEMPLATE.format(requirement=install_requirement())


BADGE_PREFIX = "[![Open In Colab]"


def badge(folder: str, filename: str) -> str:
    """The markdown "Open in Colab" badge for a notebook of this repository."""
    path = repository_url().removeprefix("https://github.com/")
    return (f"{BADGE_PREFIX}(https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{path}/blob/main/{folder}/{filename})")
