"""The first program inside a submission's sandbox: set resource limits, then become the kernel.

    python -m course_utils.grading.confine --memory BYTES --processes N -- CMD...

Limits are kernel-enforced rlimits (address space, process count, core dumps, file size), not
polling; the kernel and everything it starts inherit them.
"""

from __future__ import annotations

import os
import resource
import sys


def main(argv: list[str]) -> None:
    """Apply the limits named on the command line and exec the command after `--`."""
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    values: dict[str, list[str]] = {}
    for flag, value in zip(options[::2], options[1::2]):
        values.setdefault(flag, []).append(value)
    memory = int(values["--memory"][0])
    processes = int(values["--processes"][0])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**30, 2**30))
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
