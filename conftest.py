"""Test-wide environment: tiny profile, offline, every cache in one temporary folder.

Set at import time, before nbval starts any kernel, so notebook kernels inherit it too.
"""

import os
import tempfile
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="course-tests-"))
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

# Under `pytest -n N`, N workers (and the notebook kernels they start) share the cores: one CPU
# thread each, so no worker's torch threads spin while waiting for a core another worker holds.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    for _key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_key, "1")
