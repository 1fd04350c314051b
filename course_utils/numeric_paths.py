"""The numeric paths a lesson's claims are held to: the machine as it is, and another CPU's.

A learner's laptop computes with other floating-point kernels than the machine a lesson was
written on (oneDNN picks AVX-512, AVX2 or SSE4.1 code by CPU; ATen vectorises by CPU; threads
split sums differently), so one run's numbers differ from another's in the last bits, and a
trained model's in more. `portable` makes this machine compute as a plainer one would: used by
`benchmarks/claims_sweep.py` (every claim, seeds 0-4, both paths) and by the test suite, which
draws one path per commit (`conftest.py`). Environment variables only, no torch import: they must
be set before torch starts.
"""

from __future__ import annotations

# One thread on both, so that the paths differ in their kernels alone (and two runs share two
# cores without oversubscribing them); the suite runs its kernels on one thread too.
NUMERIC_PATHS: dict[str, dict[str, str]] = {
    "default": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "portable": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "default",
                 "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
}
