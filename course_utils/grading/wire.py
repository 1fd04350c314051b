"""The data-only boundary between a learner's kernel and the grader: JSON with a few tagged types.

A probe's result crosses from the learner's process to the grader's as text. `encode` turns
plain values (None, bool, int, float, str, list, tuple, dict, set, numpy arrays and scalars,
CPU torch tensors) into JSON; anything else is `Uncheckable`, never pickled. `decode` rebuilds
them on the grader's side as plain Python values and numpy arrays, and rejects any shape it does
not know, so a forged record can at worst carry wrong data, never code or a verdict.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_CHARS = 4_000_000  # one probe record; larger answers are reported, not decoded
MAX_DEPTH = 24
MAX_ITEMS = 2_000_000
DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64"}
TAGS = ("__tuple__", "__dict__", "__set__", "__array__", "__float__")


class Uncheckable(TypeError):
    """A value that cannot cross the boundary as data (a custom object, a lambda, a generator)."""


def _float(value: float) -> Any:
    return value if math.isfinite(value) else {"__float__": repr(value)}


def encode(value: Any, _depth: int = 0) -> Any:
    """A JSON-ready copy of `value` with tuples, dicts, sets and arrays tagged; raises
    `Uncheckable` for anything that is not plain data."""
    if _depth > MAX_DEPTH:
        raise Uncheckable("data nested too deeply")
    if value is None or isinstance(value, bool):
        return None if value is None else bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _float(float(value))
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [encode(v, _depth + 1) for v in value]
        if isinstance(value, list):
            return items
        return {"__tuple__": items} if isinstance(value, tuple) else {"__set__": items}
    if hasattr(value, "keys") and hasattr(value, "__getitem__") and not _array_like(value):
        return {"__dict__": [[encode(k, _depth + 1), encode(value[k], _depth + 1)] for k in list(value.keys())]}
    if _array_like(value):
        return _encode_array(value)
    raise Uncheckable(type(value).__name__)


def _array_like(value: Any) -> bool:
    module = type(value).__module__ or ""
    return module.startswith("numpy") or module.startswith("torch")


def _encode_array(value: Any) -> Any:
    import numpy as np

    if type(value).__module__.startswith("torch"):
        import torch

        if not isinstance(value, torch.Tensor) or value.device.type not in ("cpu", "cuda"):
            raise Uncheckable(f"{type(value).__name__} on {getattr(value, 'device', '?')}")
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            value = value.float()
        value = value.numpy()
    if isinstance(value, np.generic):
        return encode(value.item())
    if not isinstance(value, np.ndarray) or value.dtype.name not in DTYPES:
        raise Uncheckable(f"{type(value).__name__} of {getattr(value, 'dtype', '?')}")
    if value.size > MAX_ITEMS:
        raise Uncheckable(f"an array of {value.size} values")
    flat = [_float(x) if isinstance(x, float) else x for x in value.ravel().tolist()]
    return {"__array__": [value.dtype.name, list(value.shape), flat]}


def decode(data: Any, _depth: int = 0) -> Any:
    """Rebuild plain values from `encode`'s output; raises ValueError on any other shape."""
    if _depth > MAX_DEPTH + 2:
        raise ValueError("data nested too deeply")
    if data is None or isinstance(data, (bool, int, str)):
        return data
    if isinstance(data, float):
        return data
    if isinstance(data, list):
        return [decode(v, _depth + 1) for v in data]
    if not isinstance(data, dict) or len(data) != 1 or next(iter(data)) not in TAGS:
        raise ValueError("not a value the grader knows how to read")
    tag, body = next(iter(data.items()))
    if tag == "__float__":
        if body not in ("nan", "inf", "-inf"):
            raise ValueError("bad float")
        return float(body)
    if not isinstance(body, list):
        raise ValueError(f"bad {tag}")
    if tag == "__tuple__":
        return tuple(decode(v, _depth + 1) for v in body)
    if tag == "__set__":
        items = [decode(v, _depth + 1) for v in body]
        try:
            return set(items)
        except TypeError as exc:
            raise ValueError("a set of unhashable items") from exc
    if tag == "__dict__":
        out = {}
        for pair in body:
            if not isinstance(pair, list) or len(pair) != 2:
                raise ValueError("bad dict item")
            key = decode(pair[0], _depth + 1)
            try:
                out[key] = decode(pair[1], _depth + 1)
            except TypeError as exc:
                raise ValueError("an unhashable dict key") from exc
        return out
    return _decode_array(body)


def _decode_array(body: list) -> Any:
    import numpy as np

    if len(body) != 3 or body[0] not in DTYPES or not isinstance(body[1], list) \
            or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n for n in body[1]) \
            or not isinstance(body[2], list) or len(body[2]) > MAX_ITEMS:
        raise ValueError("bad array")
    if math.prod(body[1]) != len(body[2]):
        raise ValueError("array shape and data disagree")
    values = [decode(v) if isinstance(v, dict) else v for v in body[2]]
    if not all(isinstance(v, (int, float, bool)) for v in values):
        raise ValueError("array of non-numbers")
    return np.asarray(values, dtype=body[0]).reshape(body[1])


def dumps(value: Any) -> str:
    """Encode and serialise a value in one step (the kernel's side)."""
    return json.dumps(encode(value), allow_nan=False)


def loads(text: Any) -> Any:
    """Parse and decode text from the kernel (the grader's side); ValueError on anything odd."""
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        raise ValueError("record missing or too large")
    try:
        return decode(json.loads(text, parse_constant=_no_constants))
    except RecursionError as exc:
        raise ValueError("data nested too deeply") from exc


def _no_constants(name: str) -> Any:
    raise ValueError(f"bare {name} is not allowed")
