"""The Colab set-up cell, rendered from the package metadata so the repository URL and version
live in one place (pyproject.toml) and every notebook installs the same thing."""

from __future__ import annotations

from importlib import metadata

from course_utils import __version__

DIST = "finetune-course"
# The only Colab packages the install may upgrade (tests/test_colab_resolution.py), and those it
# does upgrade today: TRL (every 1.x release) needs datasets >= 4.7, which needs pyarrow >= 21;
# Colab ships datasets 4.0 and pyarrow 18.1. pyarrow is compiled and may already be loaded (pandas
# looks for it on import), so the set-up cell asks for one restart.
MAY_UPGRADE = ("transformers", "datasets", "pyarrow", "peft", "accelerate", "bitsandbytes", "trl")
UPGRADES_ON_COLAB: tuple[str, ...] = ("datasets", "pyarrow")
TEMPLATE = '''\
# Set-up: only inside Google Colab, install this course's package. Colab's own packages (torch,
# numpy, pandas, ...) stay at Colab's versions.
# {restart}
import sys

if "google.colab" in sys.modules:
    import subprocess

    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{requirement}"],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        tail = "\\n".join((pip.stdout + pip.stderr).strip().splitlines()[-3:])
        raise RuntimeError("Could not install the course package from {url}: check that the "
                           "runtime has internet access (Runtime > Change runtime type), then "
                           "rerun this cell.\\npip said: " + tail) from None
    print("course package installed"{restart_note})'''


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
    """The source of cell 2 of every notebook: installs quietly, fails with a plain message (not a
    pip traceback) when the package source is unreachable, and says whether to restart."""
    upgrades = ", ".join(UPGRADES_ON_COLAB)
    restart = (f"It upgrades {upgrades}: restart the session (Runtime > Restart session) once after it."
               if upgrades else "Nothing Colab has imported changes, so no restart is needed.")
    note = (f' + "; now restart the session (Runtime > Restart session) for the new {upgrades}"'
            if upgrades else ' + " (no restart needed)"')
    return TEMPLATE.format(requirement=install_requirement(), url=repository_url(), restart=restart,
                           restart_note=note)


BADGE_PREFIX = "[![Open In Colab]"


def badge(folder: str, filename: str) -> str:
    """The markdown "Open in Colab" badge for a notebook of this repository."""
    path = repository_url().removeprefix("https://github.com/")
    return (f"{BADGE_PREFIX}(https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{path}/blob/main/{folder}/{filename})")
