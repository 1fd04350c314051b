"""Installing the course in Colab leaves Colab's runtime packages as they are, except exactly the
ones its set-up cell announces (and asks a restart for).

pip resolves the package's requirements for Colab's interpreter (CPython 3.13, manylinux x86_64)
with every package of Colab's GPU image held at its version (tests/data/colab-pip-freeze.gpu.txt),
except `colab.UPGRADES_ON_COLAB` (Hugging Face data/training libraries only, `colab.MAY_UPGRADE`);
each of those must be needed. Limitation: with a
foreign `--python-version`, pip accepts wheels only, so requirements published only as source
distributions are left out of the resolution (their own requirements are in our list already).
"""

import json
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from course_utils.notebooks import colab

ROOT = Path(__file__).resolve().parent.parent
FREEZE = ROOT / "tests" / "data" / "colab-pip-freeze.gpu.txt"
SDIST_ONLY = {"seqeval"}  # pure Python, needs numpy and scikit-learn, both resolved here
# Colab's PyTorch builds come from PyTorch's own CUDA index (torch==2.11.0+cu128), not from the
# registry. They stand in the resolution as metadata-only wheels of exactly those versions, so pip
# must accept Colab's torch as it is and never reaches for another build or its CUDA payload.
PREINSTALLED = ("torch", "torchvision", "torchaudio")
INDEX_HOST = "pypi.org"
# Colab runs Ubuntu 22.04 (glibc 2.35); pip does not widen a given --platform to older manylinux
# tags by itself, so every tag such a system accepts is listed.
PLATFORMS = [f"manylinux_2_{g}_x86_64" for g in (35, 34, 31, 28, 27, 24, 17, 12, 5)] + \
            ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def colab_versions() -> dict[str, str]:
    """Colab's pinned `name==version` lines, local version labels (+cu128) removed."""
    pins = {}
    for line in FREEZE.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if match:
            name, version = _norm(match.group(1)), match.group(2)
            pins[name] = version if name in PREINSTALLED else version.split("+")[0]
    return pins


def _stub_wheel(folder: Path, name: str, version: str) -> None:
    """A wheel with metadata and nothing else: what pip needs to treat `name` as present."""
    import zipfile

    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")


def _registry_reachable() -> bool:
    try:
        socket.create_connection((INDEX_HOST, 443), timeout=5).close()
        return True
    except OSError:
        return False


def test_freeze_has_the_packages_the_contract_is_about():
    pins = colab_versions()
    for name in ("torch", "numpy", "pandas", "ipykernel", "ipywidgets", "matplotlib", "scikit-learn",
                 "psutil", "transformers", "datasets", "peft", "accelerate"):
        assert name in pins, name


def test_lower_bounds_do_not_exceed_colab_versions():
    """Offline half of the contract: no lower bound asks for more than Colab ships."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    pins = colab_versions()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = _norm(req.name)
        if name in pins and name not in colab.MAY_UPGRADE:
            assert Version(pins[name].split("+")[0]) in req.specifier, f"{spec} excludes Colab's {name} {pins[name]}"


def _resolve(tmp_path: Path, held: dict[str, str]) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    (tmp_path / "constraints.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(held.items())))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [r for r in project["dependencies"] if _norm(re.split(r"[<>=!~\[ ;]", r)[0]) not in SDIST_ONLY]
    report = tmp_path / "report.json"
    report.unlink(missing_ok=True)
    # --target: pip before 24 takes a foreign --platform only with it (a fresh venv's bundled pip
    # is 23 on Python 3.11); with --dry-run nothing is written there
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--target", str(tmp_path / "target"), "--report", str(report), "--python-version", "3.13", "--implementation", "cp",
           "--abi", "cp313", *(f"--platform={p}" for p in PLATFORMS), "--only-binary=:all:",
           "--find-links", str(tmp_path), "-c", str(tmp_path / "constraints.txt"), *requirements]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    chosen = {} if run.returncode else {
        _norm(i["metadata"]["name"]): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    return run, chosen


@pytest.mark.skipif(not _registry_reachable(), reason=f"package registry ({INDEX_HOST}) unreachable")
def test_pip_resolves_with_colab_runtime_held_fixed(tmp_path):
    pins = colab_versions()
    for name in PREINSTALLED:
        _stub_wheel(tmp_path, name, pins[name])
    # In Colab pip keeps whatever already satisfies a requirement and upgrades only what a new
    # requirement needs: hold everything but the packages the set-up cell says it upgrades.
    upgrades = set(colab.UPGRADES_ON_COLAB)
    assert upgrades <= set(colab.MAY_UPGRADE)
    run, chosen = _resolve(tmp_path, {n: v for n, v in pins.items() if n not in upgrades})
    assert run.returncode == 0, f"pip cannot resolve with Colab's packages held fixed:\n{run.stderr[-3000:]}"
    changed = {n: (pins[n], v) for n, v in chosen.items() if n in pins and pins[n] != v}
    # the set-up cell tells learners to restart exactly when it upgrades something Colab ships
    assert set(changed) == upgrades, f"Colab runtime packages would change: {changed}"
    for name in sorted(upgrades):  # and each upgrade it announces is needed
        held = {n: v for n, v in pins.items() if n not in upgrades - {name}}
        assert _resolve(tmp_path, held)[0].returncode != 0, f"{name} need not be upgraded"
    assert chosen["torch"] == pins["torch"] and chosen["numpy"] == pins["numpy"]
