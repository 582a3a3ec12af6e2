"""The solver-to-harness message format: JSON plus raw numeric buffers, never pickle.

Unpickling is code execution, so a message from an untrusted solver must not be a pickle: a crafted one
would run in the harness process, which writes the board. A message here is a JSON header (the structure,
with scalars, strings and array descriptors) followed by the arrays' bytes. Only numeric and boolean dtypes
are accepted; every descriptor is checked against the buffer before an array is made, and the whole message
is bounded by the caller (``max_bytes``) before it is read.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

ALLOWED_KINDS = "biufc"
_HEAD = struct.Struct("<Q")


class WireError(ValueError):
    """A message that is not well formed (one line)."""


def _describe(obj: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(obj, dict):
        return {"d": {str(k): _describe(v, arrays) for k, v in obj.items()}}
    if isinstance(obj, (list, tuple)):
        return {"l": [_describe(v, arrays) for v in obj]}
    if hasattr(obj, "__array__") and not isinstance(obj, (np.generic, str, bytes)):
        a = np.ascontiguousarray(np.asarray(obj))
        if a.dtype.kind not in ALLOWED_KINDS:
            raise WireError(f"arrays of dtype {a.dtype} cannot be sent (numbers and booleans only)")
        arrays.append(a)
        return {"a": len(arrays) - 1, "dtype": a.dtype.str, "shape": list(a.shape)}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"v": obj}
    if isinstance(obj, complex):
        return {"c": [obj.real, obj.imag]}
    raise WireError(f"a {type(obj).__name__} cannot be sent (dicts, lists, numbers, strings and arrays only)")


def encode(obj: Any) -> bytes:
    arrays: list[np.ndarray] = []
    head = json.dumps(_describe(obj, arrays)).encode()
    return b"".join([_HEAD.pack(len(head)), head] + [a.tobytes() for a in arrays])


def _build(node: Any, buf: memoryview, offsets: list[int]) -> Any:
    if not isinstance(node, dict) or len(node) == 0:
        raise WireError("malformed message")
    if "d" in node:
        return {str(k): _build(v, buf, offsets) for k, v in node["d"].items()}
    if "l" in node:
        return [_build(v, buf, offsets) for v in node["l"]]
    if "v" in node:
        v = node["v"]
        if v is not None and not isinstance(v, (bool, int, float, str)):
            raise WireError("malformed scalar")
        return v
    if "c" in node:
        re, im = node["c"]
        return complex(float(re), float(im))
    if "a" in node:
        dt = np.dtype(str(node["dtype"]))
        shape = tuple(int(s) for s in node["shape"])
        if dt.kind not in ALLOWED_KINDS or any(s < 0 for s in shape):
            raise WireError(f"array of dtype {dt} or shape {shape} not accepted")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        start = offsets[0]
        if start + nbytes > len(buf):
            raise WireError("array descriptors exceed the message")
        offsets[0] = start + nbytes
        return np.frombuffer(buf[start:start + nbytes], dtype=dt).reshape(shape).copy()
    raise WireError("malformed message")


def decode(data: bytes) -> Any:
    if len(data) < _HEAD.size:
        raise WireError("truncated message")
    (n,) = _HEAD.unpack_from(data)
    if _HEAD.size + n > len(data):
        raise WireError("truncated message header")
    try:
        head = json.loads(data[_HEAD.size:_HEAD.size + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WireError("message header is not JSON") from None
    offsets = [0]
    body = memoryview(data)[_HEAD.size + n:]
    obj = _build(head, body, offsets)
    if offsets[0] != len(body):
        raise WireError("message carries bytes no descriptor accounts for")
    return obj
