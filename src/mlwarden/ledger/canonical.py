"""RFC 8785 JSON Canonicalization Scheme (JCS), fast enough for the append path.

The same output as the reference ``rfc8785`` package (property-tested against it).

orjson writes the bulk: with sorted keys and 53-bit integers its bytes are the JCS bytes
(same string escapes, no whitespace, keys in code-point order) except in four places, each
fixed here exactly:

* floats: orjson prints ``1.0`` where ECMAScript prints ``1``, ``1e+16`` … ``1e+20`` where it
  prints the digits in full, and ``1e-6`` (1e-6 <= |x| < 1e-5) where it prints ``0.000001``.
  Those tokens (found outside strings by byte search, never by walking the value) are
  rewritten by :func:`_float`, ECMAScript's Number::toString;
* NaN and ±Infinity: orjson writes ``null``. Only when the output holds ``null`` is the value
  walked to tell a ``None`` from a non-finite float, which is refused;
* key order: JCS sorts by UTF-16 code units, orjson by code point. The two differ only when
  a key holds a character from U+E000-U+FFFF and another a character above U+FFFF; output
  with both kinds of byte takes the general path below;
* errors: anything orjson refuses is re-run through the general path, which names the
  problem (lone surrogate, integer beyond 2**53-1, non-string key, not a JSON value).

orjson also writes ``uuid.UUID`` (as its string) and ``enum.Enum`` members (as their value),
which the reference refuses; every other non-JSON type is refused.
"""

from __future__ import annotations

import json.encoder
import math
import re
from collections.abc import Callable
from typing import Any

import orjson

from mlwarden.errors import InvalidInput

_encode_str: Callable[[str], str] = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
)
_INT_LIMIT = 2**53 - 1
MAX_DEPTH = 254
"""Containers nested deeper than this are refused (orjson's own limit; the general path agrees)."""

_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_STRICT_INTEGER
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)
# Float tokens orjson prints differently from ECMAScript, found by their literal start (a fast
# search): a trailing ".0", an exponent of +16 to +20, an exponent of -6. Each must end its token.
_FIXES = (
    re.compile(rb"\.0(?=[,\]}]|\Z)"),
    re.compile(rb"e\+(?:1[6-9]|20)(?=[,\]}]|\Z)"),
    re.compile(rb"e-6(?=[,\]}]|\Z)"),
)
_SUPPLEMENTARY = re.compile(rb"[\xf0-\xf4]")  # lead byte of a character above U+FFFF
_HIGH_BMP = re.compile(rb"[\xee\xef]")  # lead byte of a character in U+E000-U+FFFF


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
    """The general path: slow, exact, and the one that names what is wrong."""
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
    elif isinstance(value, dict | list | tuple) and depth >= MAX_DEPTH:
        raise InvalidInput(f"JSON is nested deeper than {MAX_DEPTH} levels")
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


def _general(value: Any) -> bytes:
    out: list[str] = []
    _emit(value, out, 0)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput("JSON text contains a lone surrogate, which is not valid Unicode") from exc


def _plain(value: Any) -> Any:
    """orjson's ``default``: subclasses of JSON types (numpy.float64 is a float) as the base type."""
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _has_non_finite(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _outside_strings(out: bytes) -> bytes:
    """``out`` with every escaped quote and backslash blanked: the same length, quotes only at string ends."""
    if b"\\" not in out:
        return out
    return out.replace(b"\\\\", b"\0\0").replace(b'\\"', b"\0\0")


_EXPONENT = re.compile(rb"e(?:\+(?:1[6-9]|20)|-6)(?=[,\]}]|\Z)")
_NEGATIVE_ZERO = re.compile(rb"-0\.0(?=[,\]}]|\Z)")
_TRAILING_ZERO = _FIXES[0]
_LOOK_ALIKE = re.compile(rb"\.0[,\]}]|e(?:\+(?:1[6-9]|20)|-6)[,\]}]")
"""A string holding one of these would be mistaken for a float token by the bulk rewrite."""


def _fix_numbers(out: bytes) -> bytes:
    """Rewrite the float tokens orjson prints differently from ECMAScript (see the module docstring)."""
    exponent = _EXPONENT.search(out) is not None
    if not exponent and _TRAILING_ZERO.search(out) is None:
        return out
    scan = _outside_strings(out)
    strings = b"\0".join(scan.split(b'"')[1::2])
    suspect = b".0" in strings or b"e+" in strings or b"e-6" in strings  # a cheap pre-filter
    if (suspect and _LOOK_ALIKE.search(strings) is not None) or _NEGATIVE_ZERO.search(out) is not None:
        return _rewrite_tokens(out, scan, _FIXES)  # token by token (a rare case)
    if exponent:  # few tokens (an exponent of +16 to +20 or -6), each rewritten
        out = _rewrite_tokens(out, scan, _FIXES[1:])
    return _TRAILING_ZERO.sub(b"", out)  # every other token in one C-speed pass: 1001.0 -> 1001


def _expand(token: bytes) -> bytes:
    """orjson's ``d.ddde+NN`` (NN 16-20) or ``d.ddde-6`` in ECMAScript's fixed notation, by moving digits."""
    sign, body = (b"-", token[1:]) if token[:1] == b"-" else (b"", token)
    mantissa, _, exponent = body.partition(b"e")
    digits, power = mantissa.replace(b".", b""), int(exponent)
    if power < 0:
        return sign + b"0." + b"0" * (-power - 1) + digits
    return sign + digits + b"0" * (power + 1 - len(digits))


def _rewrite_tokens(out: bytes, scan: bytes, patterns: tuple[re.Pattern[bytes], ...]) -> bytes:
    """Rewrite each float token ``patterns`` find, skipping look-alikes inside strings."""
    spots = sorted(m.start() for pattern in patterns for m in pattern.finditer(out))
    pieces: list[bytes] = []
    done = quotes = seen = 0
    for at in spots:
        quotes += scan.count(b'"', seen, at)
        seen = at
        if quotes % 2:  # inside a string
            continue
        lo = max(0, at - 32)  # a float token is at most 24 bytes long
        start = max(out.rfind(b",", lo, at), out.rfind(b"[", lo, at), out.rfind(b":", lo, at), lo - 1) + 1
        end = at + (2 if out[at] == 0x2E else 4 if out[at + 1] == 0x2B else 3)  # ".0", "e+NN", "e-6"
        pieces += (
            out[done:start],
            _expand(out[start:end]) if out[at] == 0x65 else _float(float(out[start:end])).encode(),
        )
        done = end
    pieces.append(out[done:])
    return b"".join(pieces)


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical bytes of a JSON value; anything JSON cannot carry is an input error."""
    try:
        out = orjson.dumps(value, default=_plain, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return _general(value)  # raises the precise InvalidInput (or agrees, should orjson be stricter)
    if not out.isascii() and _SUPPLEMENTARY.search(out) and _HIGH_BMP.search(out):
        return _general(value)  # UTF-16 key order may differ from code-point order
    if b"null" in out and _has_non_finite(value):
        raise InvalidInput("NaN and Infinity cannot be represented in JSON")
    return _fix_numbers(out)
