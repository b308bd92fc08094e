"""RFC 8785 JSON Canonicalization Scheme (JCS), fast enough for the append path.

The same output as the reference ``rfc8785`` package (property-tested against it).

Fast path: when a value holds only strings, booleans, nulls, safe integers, floats whose
shortest ``repr`` already is the ECMAScript form (non-integral, 1e-4 <= |x| < 1e16), and
object keys below U+D800 (where code-point order equals UTF-16 order), the standard
library's C encoder with sorted keys writes exactly the JCS bytes: its string escapes are
the ECMAScript ones. Anything else takes the general path below, which formats numbers
as ECMAScript does and sorts keys by UTF-16 code units.
"""

from __future__ import annotations

import json
import json.encoder
import math
from collections.abc import Callable
from typing import Any

from mlwarden.errors import InvalidInput

_encode_str: Callable[[str], str] = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
)
_INT_LIMIT = 2**53 - 1
MAX_DEPTH = 64


def _float(f: float) -> str:
    """ECMAScript Number::toString as amended by RFC 8785 section 3.2.2.3."""
    if math.isnan(f) or math.isinf(f):
        raise InvalidInput("NaN and Infinity cannot be represented in JSON")
    if f == 0:
        return "0"
    if f < 0:
        return "-" + _float(-f)
    text = repr(f)
    exp_str, exponent = "", 0
    q = text.find("e")
    if q > 0:
        exp_str = text[q:]
        if exp_str[2:3] == "0":
            exp_str = exp_str[:2] + exp_str[3:]
        text = text[:q]
        exponent = int(exp_str[1:])
    first, dot, last = text, "", ""
    q = text.find(".")
    if q > 0:
        first, dot, last = text[:q], ".", text[q + 1 :]
    if last == "0":
        dot, last = "", ""
    if 0 < exponent < 21:
        first += last
        last = dot = exp_str = ""
        first += "0" * (exponent - len(first) + 1)
    elif -7 < exponent < 0:
        last = "0" * (-exponent - 1) + first + last
        first, dot, exp_str = "0", ".", ""
    return f"{first}{dot}{last}{exp_str}"


def _emit(value: Any, out: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidInput(f"JSON is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        out.append(_encode_str(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if not -_INT_LIMIT <= value <= _INT_LIMIT:
            raise InvalidInput(f"integer {value} is outside the exactly representable range of ±(2**53-1)")
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(_float(float(value)))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        for key in value:
            if not isinstance(key, str):
                raise InvalidInput(f"JSON object keys must be strings, got {type(key).__name__}")
        out.append("{")
        first = True
        for key in sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass")):
            if not first:
                out.append(",")
            first = False
            out.append(_encode_str(key))
            out.append(":")
            _emit(value[key], out, depth + 1)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _emit(item, out, depth + 1)
        out.append("]")
    else:
        raise InvalidInput(f"{type(value).__name__} is not a JSON value")


_C_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False, check_circular=False
)


def _fast_ok(value: Any, depth: int = 0) -> bool:
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return bool(-_INT_LIMIT <= value <= _INT_LIMIT)
    if kind is float:
        size = abs(value)
        return bool(1e-4 <= size < 1e16 and size != int(size))
    if depth >= MAX_DEPTH:
        return False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (not key.isascii() and max(key) >= "\ud800"):
                return False
            if not _fast_ok(item, depth + 1):
                return False
        return True
    if kind is list:
        return all(_fast_ok(item, depth + 1) for item in value)
    return False


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical bytes of a JSON value; anything JSON cannot carry is an input error."""
    if _fast_ok(value):
        try:
            return _C_ENCODER.encode(value).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput("JSON text contains a lone surrogate, which is not valid Unicode") from exc
    out: list[str] = []
    _emit(value, out, 0)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput("JSON text contains a lone surrogate, which is not valid Unicode") from exc
