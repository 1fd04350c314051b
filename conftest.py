"""Test-wide environment: tiny profile, offline, every cache in one temporary folder.

Set at import time, before any test starts a kernel, so notebook kernels inherit it too.
"""

import os
import tempfile
from pathlib import Path

# One folder for the whole run: `pytest -n N` workers inherit the controller's, so the checkpoints
# the course pretrains are built once, not once per worker (cache entries appear in one rename).
_TMP = Path(os.environ.get("COURSE_TESTS_TMP") or tempfile.mkdtemp(prefix="course-tests-"))
os.environ["COURSE_TESTS_TMP"] = str(_TMP)
for _key, _value in {
    "COURSE_PROFILE": "tiny",
    "COURSE_CACHE": str(_TMP / "course"),
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HOME": str(_TMP / "hf"),
    "MPLCONFIGDIR": str(_TMP / "matplotlib"),
    "IPYTHONDIR": str(_TMP / "ipython"),
    "TORCH_HOME": str(_TMP / "torch"),
    "MPLBACKEND": "agg",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONWARNINGS": "ignore",
}.items():
    os.environ[_key] = _value

from course_utils.numeric_paths import NUMERIC_PATHS  # noqa: E402 (no torch import)

# Portability: a claim must hold for every seed and on every CPU, not for the one this suite ran on
# last. So each commit draws its own seed (0-4) and numeric path, the ones benchmarks/claims_sweep.py
# measures, from its hash: consecutive CI runs try different ones, and a claim tuned to one seed or
# one CPU fails in CI instead of on a learner's laptop. `portable` computes as another CPU would
# (course_utils.numeric_paths); COURSE_SEED and COURSE_NUMERIC_PATH
# choose them by hand (rerun a red CI run with the values its header printed).


def _commit_draw() -> tuple[int, str, str]:
    import subprocess

    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10).stdout.strip()
        number = int(sha[:12], 16)
    except (OSError, ValueError, subprocess.SubprocessError):  # not a checkout: the defaults
        sha, number = "no commit", 0
    return number % 5, ("default", "portable")[(number // 5) % 2], sha[:12]


_SEED, _PATH, _SHA = _commit_draw()
os.environ.setdefault("COURSE_SEED", str(_SEED))
os.environ.setdefault("COURSE_NUMERIC_PATH", _PATH)
if os.environ["COURSE_NUMERIC_PATH"] not in NUMERIC_PATHS:
    raise SystemExit(f"COURSE_NUMERIC_PATH must be one of {', '.join(NUMERIC_PATHS)}")
for _key, _value in NUMERIC_PATHS[os.environ["COURSE_NUMERIC_PATH"]].items():
    os.environ.setdefault(_key, _value)


def pytest_report_header(config):
    return (f"course: seed {os.environ['COURSE_SEED']}, numeric path {os.environ['COURSE_NUMERIC_PATH']} "
            f"(drawn from commit {_SHA}; rerun with COURSE_SEED=... COURSE_NUMERIC_PATH=...)")


# Under `pytest -n N`, N workers (and the notebook kernels they start) share the cores: one CPU
# thread each, so no worker's torch threads spin while waiting for a core another worker holds.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    for _key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_key, "1")

_TESTS = Path(__file__).resolve().parent / "tests"
# Modules whose tests share a module-scoped fixture (a trained model, a graded class, a service).
SHARED_FIXTURE_MODULES = frozenset(
    p.name for p in _TESTS.glob("test_*.py") if '@pytest.fixture(scope="module")' in p.read_text())
# Folders whose tests share session-scoped fixtures (the browser tests: one JupyterLab, one
# Chromium, one grading run), so that one worker builds them once.
SHARED_SESSION_FOLDERS = ("tests/browser/",)
# Modules that execute whole notebooks, one per test: the longest tests, started first.
NOTEBOOK_MODULES = ("test_grading_lessons.py", "test_rehearsal.py")


# What the course pretrains on first use and the grader copies into each kernel (kernel._seed_cache):
# built by the controller while the workers collect, so that no notebook kernel pretrains its own.
WARM_UP = """
from course_utils.vision.backbones import pretrained_tiny_resnet
from course_utils.llm.causal_lm import INSTRUCT_BASE, base_model_path
pretrained_tiny_resnet(progress=False)
base_model_path(progress=False)
base_model_path(INSTRUCT_BASE, progress=False)
from course_utils.llm.dpo import instruct_model
instruct_model()
"""


def pytest_configure(config):
    """Under `-n N`, the controller (which runs no test) pretrains the cached checkpoints in a
    child process; a kernel that starts before one is ready builds its own, as it always could."""
    import subprocess
    import sys

    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    config._course_warm_up = subprocess.Popen([sys.executable, "-c", WARM_UP], env=env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pytest_unconfigure(config):
    warm_up = getattr(config, "_course_warm_up", None)
    if warm_up is not None and warm_up.poll() is None:
        warm_up.kill()


def pytest_collection_modifyitems(items):
    """Notebook-executing modules first, so that `-n 2` ends on short tests, not on a lesson."""
    items.sort(key=lambda item: item.path.name not in NOTEBOOK_MODULES)


def pytest_xdist_make_scheduler(config, log):
    """`-n N` scheduling: a module with a module-scoped fixture goes to one worker as one unit (its
    fixture is built once); every other test is a unit of its own, so the notebooks spread. (This
    is what `--dist loadgroup` would do, but pytest 9 ignores the node-id suffix it relies on.)"""
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixturesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            folder = next((f for f in SHARED_SESSION_FOLDERS if module.startswith(f)), None)
            if folder is not None:
                return folder
            return module if Path(module).name in SHARED_FIXTURE_MODULES else nodeid

    return SharedFixturesTogether(config, log)


import pytest  # noqa: E402


@pytest.fixture
def course_seed() -> int:
    """The seed of this run (COURSE_SEED, drawn from the commit): tests that train take it, so
    that their margins, like the lessons' claims, are held to every seed the sweep measured."""
    return int(os.environ["COURSE_SEED"])
