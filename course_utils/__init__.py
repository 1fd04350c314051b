"""Helper package for the finetune-course notebooks: the real code behind every lesson."""

import logging as _logging

__version__ = "0.1.0"

# bitsandbytes logs a warning on CPUs with AVX512-BF16 when it cannot fetch an optional faster
# 4-bit kernel from a hub; offline that fetch always fails and the built-in kernel is used instead.
_logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(_logging.ERROR)
