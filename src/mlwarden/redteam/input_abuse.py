"""Suite ``input``: bodies a careless or hostile client sends to the predict route.

Each must be refused with a 4xx problem+json: never a 5xx, never a prediction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from mlwarden.redteam.findings import FindingSeverity, SuiteResult
from mlwarden.redteam.suites import FeatureRange, SuiteOptions, register
from mlwarden.redteam.target import Reply, Target
from mlwarden.redteam.verdicts import Tally

SUITE = "input"
OVERSIZED_BYTES = 4 << 20
"""A body this large must be refused (the gateway's default limit is 1 MiB)."""
MANY_ROWS = 1_500
"""A request with this many rows must be refused (the default limit is 1,000 rows, and 1 MiB)."""
_REMEDY = "validate every request against the model's input signature and refuse what does not fit with a 4xx"
_REMEDY_RANGE = "declare min/max for each feature in the model's signature (register it with --signature)"

Body = tuple[str, str, bytes, str]
"""(probe id, title, raw body, content type)."""


def _raw(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _malformed() -> Iterator[Body]:
    yield "malformed-json", "a body that is not JSON", b'{"inputs": [[1, 2', "application/json"
    yield "not-an-object", "a JSON array instead of an object", b"[[1, 2, 3]]", "application/json"
    yield "null-body", "JSON null", b"null", "application/json"
    yield "no-inputs", "an object without inputs", b"{}", "application/json"
    yield "empty-inputs", "an empty list of rows", b'{"inputs": []}', "application/json"
    yield "inputs-not-list", "inputs that is a string", b'{"inputs": "rows"}', "application/json"
    yield "wrong-content-type", "JSON sent as text/plain", b'{"inputs": [[1]]}', "text/plain"
    yield "xml-body", "an XML body", b"<inputs><row>1</row></inputs>", "application/xml"
    yield "duplicate-keys", "an object with the same key twice", b'{"inputs": 1, "inputs": [[1]]}', "application/json"


Row = dict[str, Any] | list[Any]
"""A row the model accepts: keyed by feature name, or a list in signature order."""


def _set(row: Row, key: str | int, value: Any) -> Row:
    if isinstance(row, dict):
        return {**row, str(key): value}
    out = list(row)
    out[int(key)] = value
    return out


def _without(row: Row, key: str | int) -> Row:
    return {k: v for k, v in row.items() if k != key} if isinstance(row, dict) else list(row)[1:]


def _first_numeric(row: Row, features: tuple[FeatureRange, ...]) -> str | int:
    if isinstance(row, list):
        return 0
    numeric = [f.name for f in features if f.dtype not in ("string", "text", "categorical") and f.name in row]
    return numeric[0] if numeric else next(iter(row))


def _json(rows: list[Any]) -> bytes:
    return _raw({"inputs": rows})


def _shaped(row: Row, features: tuple[FeatureRange, ...]) -> Iterator[Body]:
    """Wrong shapes and types, derived from a row the model accepts."""
    kind = "application/json"
    width = len(row)
    first = _first_numeric(row, features)
    yield "row-scalar", "a row that is a number", _json([1.0]), kind
    yield "row-nested", "a row of lists", _json([[[1.0, 2.0]]]), kind
    yield "row-short-list", "a list row with one value", _json([[1.0]]), kind
    yield "row-long-list", "a list row with too many values", _json([[1.0] * (width + 5)]), kind
    yield "missing-feature", f"a row without feature {first}", _json([_without(row, first)]), kind
    extra = {**row, "zz_injected": 1} if isinstance(row, dict) else [*row, 1.0]
    yield "unknown-feature", "a row with an unknown extra feature", _json([extra]), kind
    for probe, value in (("string", "abc"), ("bool", True), ("null", None), ("object", {"$gt": 0}), ("list", [1])):
        yield f"type-{probe}", f"feature {first} given as a {probe}", _json([_set(row, first, value)]), kind
    marker = 0.123456789
    template = _json([_set(row, first, marker)])
    for probe, text in (("nan", "NaN"), ("infinity", "Infinity"), ("minus-infinity", "-Infinity"),
                        ("overflow", "1e999"), ("long-integer", "123456789012345678901234567890")):  # fmt: skip
        yield f"value-{probe}", f"feature {first} = {text}", template.replace(str(marker).encode(), text.encode()), kind
    yield "value-float32-overflow", f"feature {first} = 1e300 (beyond float32)", _json([_set(row, first, 1e300)]), kind


def _oversized(row: Row) -> Iterator[Body]:
    padding = b" " * OVERSIZED_BYTES
    yield (
        "oversized-body",
        f"a {OVERSIZED_BYTES >> 20} MiB body",
        b'{"inputs": [' + _raw(row) + b"]" + padding + b"}",
        "application/json",
    )
    rows = b",".join([_raw(row)] * MANY_ROWS)
    yield "too-many-rows", f"{MANY_ROWS} rows in one request", b'{"inputs": [' + rows + b"]}", "application/json"


def _out_of_range(tally: Tally, target: Target, row: Row, features: tuple[FeatureRange, ...]) -> None:
    """A value far outside a feature's known range must be refused (only when a range is known)."""
    if isinstance(row, list):
        bounded = [f for f in features[: len(row)] if f.maximum is not None]
    else:
        bounded = [f for f in features if f.maximum is not None and f.name in row]
    title = "a value far beyond the feature's range"
    if not bounded:
        tally.not_checked("value-out-of-range", title, "no feature ranges known (--signature or --reference)")
        return
    feature = bounded[0]
    span = abs(feature.maximum or 0.0) + abs(feature.minimum or 0.0) + 1.0
    value = (feature.maximum or 0.0) + 1000 * span
    key: str | int = features.index(feature) if isinstance(row, list) else feature.name
    reply = _send(target, _json([_set(row, key, value)]), "application/json")
    tally.refused("value-out-of-range", f"{feature.name} = {value:g}: {title}", reply, remedy=_REMEDY_RANGE,
                  if_accepted=FindingSeverity.MEDIUM)  # fmt: skip


def _send(target: Target, body: bytes, content_type: str) -> Reply:
    headers = {"Content-Type": content_type}
    return target.request("POST", f"/v1/models/{target.model}/predict", patient=True,
                          token=target.tokens.inference, content=body, headers=headers)  # fmt: skip


def _accepted_row(target: Target, options: SuiteOptions) -> Row | None:
    """The sample row as the model takes it: keyed by name, else as a list in column order (a tensor model)."""
    row = options.sample_row()
    if row is None:
        return None
    for candidate in (row, list(row.values())):
        if _send(target, _json([candidate]), "application/json").status == 200:
            return candidate
    return None


def _severity(probe: str) -> FindingSeverity:
    """A prediction on a shape or type the model never declared is high; on a lenient envelope, low."""
    lenient = ("wrong-content-type", "duplicate-keys", "unknown-feature", "value-long-integer", "type-bool")
    return FindingSeverity.LOW if probe in lenient else FindingSeverity.HIGH


@register(SUITE)
def run_input(target: Target, options: SuiteOptions) -> SuiteResult:
    """Send each hostile body once; judge each answer."""
    started = time.monotonic()
    tally = Tally(SUITE)
    bodies = list(_malformed())
    row = _accepted_row(target, options)
    if row is None:
        tally.not_checked("shapes", "wrong shapes, types and values",
                          "no row the model accepts is known (--signature, --reference)")  # fmt: skip
    else:
        bodies += [*_shaped(row, options.features), *_oversized(row)]
        _out_of_range(tally, target, row, options.features)
    for probe, title, body, content_type in bodies:
        if not body:
            continue
        reply = _send(target, body, content_type)
        tally.refused(probe, title, reply, remedy=_REMEDY, if_accepted=_severity(probe))
    return SuiteResult(SUITE, tally.findings, {"probes": len(tally.checks)}, queries=0,
                       seconds=time.monotonic() - started, checks=tally.checks)  # fmt: skip
