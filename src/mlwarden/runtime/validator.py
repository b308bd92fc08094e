"""Request validation compiled once per model: a few whole-matrix NumPy checks per request.

The fast path checks every cell of a numeric batch in about four array operations (ranges,
NaN/Inf, integrality); only when something fails does it walk the columns to name the row
and feature. Rows given as JSON objects, or anything unusual, take a row-by-row path that
names exactly what is wrong.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlwarden.errors import ValidationError
from mlwarden.runtime.signature import MAX_ROWS, NUMERIC, Feature, InputSignature, is_number

_BIG = float(np.finfo(np.float64).max)
_HOLDS = {
    "float32": float(np.finfo(np.float32).max),
    "float64": _BIG,
    "int32": float(np.iinfo(np.int32).max),
    "int64": float(np.nextafter(np.float64(2.0**63), np.float64(0.0))),
}
"""The largest magnitude each numeric type holds: a value past it would overflow to inf or wrap when cast."""


def representable(feature: Feature, tensor_dtype: str | None) -> float:
    """The largest magnitude ``feature`` may carry: what its own type and (for a tensor) the model's input type hold."""
    kinds = [feature.dtype] + ([tensor_dtype] if tensor_dtype else [])
    return min((_HOLDS[k] for k in kinds if k in _HOLDS), default=_BIG)


_MISSING = math.nan
"""An absent value of an optional text feature, as scikit-learn's encoders spell missing."""


class Validator:
    """Validation for one signature; build it once, call :meth:`validate` per request."""

    def __init__(self, signature: InputSignature) -> None:
        self.signature = signature
        feats = signature.features
        self.width = len(feats)
        self.names = [f.name for f in feats]
        self.index = {n: j for j, n in enumerate(self.names)}
        self.numeric = all(f.dtype in NUMERIC for f in feats)
        tensor = signature.tensor_dtype if signature.layout == "tensor" else None
        self.holds = [representable(f, tensor) for f in feats]
        self.lo = np.array([_lower(f, h) for f, h in zip(feats, self.holds, strict=True)], dtype=np.float64)
        self.hi = np.array([_upper(f, h) for f, h in zip(feats, self.holds, strict=True)], dtype=np.float64)
        self.nan_ok = np.array([f.allow_nan for f in feats], dtype=bool)
        self.any_nan_ok = bool(self.nan_ok.any())
        self.int_cols = np.array([j for j, f in enumerate(feats) if f.dtype in ("int64", "int32")], dtype=np.intp)
        self.allowed = [(j, f) for j, f in enumerate(feats) if f.allowed is not None]
        self.tensor_dtype = NUMERIC.get(signature.tensor_dtype, np.float32)
        # The same bounds in float32, rounded inwards, so float32 batches compare without upcasting.
        self.lo32 = _inward(self.lo, up=True)
        self.hi32 = _inward(self.hi, up=False)

    def validate(self, rows: Any) -> np.ndarray | dict[str, np.ndarray]:
        """Model input for ``rows``, or :class:`ValidationError` naming the row and the field."""
        if isinstance(rows, np.ndarray):
            return self._check_matrix(rows)
        if not isinstance(rows, list) or not rows:
            raise ValidationError("inputs must be a non-empty list of rows", field="inputs")
        if len(rows) > MAX_ROWS:
            raise ValidationError(f"at most {MAX_ROWS} rows per request, got {len(rows)}", field="inputs")
        if self.numeric and self.signature.layout == "tensor" and all(type(r) is list for r in rows):
            try:
                matrix = np.asarray(rows, dtype=np.float64)
            except (ValueError, TypeError, OverflowError):
                matrix = None
            if matrix is not None and matrix.ndim == 2 and matrix.shape[1] == self.width and _plain_numbers(rows):
                return self._check_matrix(matrix)
        return self._slow(rows)

    # ------------------------------------------------------------------ matrices
    def _check_matrix(self, matrix: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
        if matrix.ndim != 2 or matrix.shape[1] != self.width:
            raise ValidationError(f"inputs must have shape (rows, {self.width}), got {matrix.shape}", field="inputs")
        if matrix.dtype.kind not in "fiu":
            raise ValidationError(f"inputs must be numbers, got {matrix.dtype}", field="inputs")
        lo, hi = (self.lo32, self.hi32) if matrix.dtype == np.float32 else (self.lo, self.hi)
        ok = (matrix >= lo) & (matrix <= hi)  # NaN and ±Inf fail both comparisons
        if self.any_nan_ok and matrix.dtype.kind == "f":
            ok |= np.isnan(matrix) & self.nan_ok
        if not ok.all():
            self._explain(matrix)
        if self.int_cols.size:
            part = matrix[:, self.int_cols]
            with np.errstate(invalid="ignore"):
                fractional = (part != np.floor(part)) & ~np.isnan(part)
            if fractional.any():
                row, col = np.argwhere(fractional)[0]
                name = self.names[int(self.int_cols[col])]
                raise ValidationError(f"row {int(row)}: feature {name!r} must be an integer", field=name)
        for j, feature in self.allowed:
            _check_allowed(feature, matrix[:, j])
        return self._shape(matrix)

    def _explain(self, matrix: np.ndarray) -> None:
        """Name the first failing cell (column order, then row)."""
        for j, feature in enumerate(self.signature.features):
            column = matrix[:, j].astype(np.float64)
            bad = ~np.isfinite(column)
            if feature.allow_nan:
                bad &= ~np.isnan(column)
            if bad.any():
                row = int(np.argmax(bad))
                raise ValidationError(f"row {row}: feature {feature.name!r} is NaN or infinite", field=feature.name)
            _check_range(feature, column, self.holds[j])
        raise ValidationError("inputs are out of range", field="inputs")  # pragma: no cover - _explain always finds it

    def _shape(self, matrix: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
        if self.signature.layout == "tensor":
            if matrix.dtype == self.tensor_dtype and matrix.flags.c_contiguous:
                return matrix
            return np.ascontiguousarray(matrix, dtype=self.tensor_dtype)
        if self.signature.layout == "frame":
            return {f.name: matrix[:, j].astype(np.float64) for j, f in enumerate(self.signature.features)}
        return {
            f.name: matrix[:, j].astype(NUMERIC.get(f.dtype, np.float32)).reshape(-1, 1)
            for j, f in enumerate(self.signature.features)
        }

    # ------------------------------------------------------------------ rows, one by one
    def _slow(self, rows: list[Any]) -> np.ndarray | dict[str, np.ndarray]:
        features = self.signature.features
        columns: list[list[Any]] = [[] for _ in features]
        for r, row in enumerate(rows):
            values = self._row_values(r, row)
            for j, (feature, value) in enumerate(zip(features, values, strict=True)):
                columns[j].append(_coerce(feature, value, r))
        if not any(f.is_text for f in features):
            return self._check_matrix(np.array(columns, dtype=np.float64).T)
        arrays = [_column(feature, column) for feature, column in zip(features, columns, strict=True)]
        layout = self.signature.layout
        if layout == "tensor":
            if all(f.is_text for f in features):
                return np.array(arrays, dtype=object).T
            raise ValidationError("mixed string and numeric features need a per-column model input", field="inputs")
        if layout == "frame":
            return {f.name: array for f, array in zip(features, arrays, strict=True)}
        return {f.name: array.reshape(-1, 1) for f, array in zip(features, arrays, strict=True)}

    def _row_values(self, r: int, row: Any) -> Sequence[Any]:
        if isinstance(row, dict):
            for key in row:
                if key not in self.index:
                    raise ValidationError(f"row {r}: unknown feature {key!r}", field=str(key))
            values: list[Any] = []
            for feature in self.signature.features:
                if feature.name in row:
                    values.append(row[feature.name])
                elif feature.required:
                    raise ValidationError(f"row {r}: missing feature {feature.name!r}", field=feature.name)
                else:
                    values.append(None)
            return values
        if isinstance(row, list):
            if len(row) != self.width:
                raise ValidationError(
                    f"row {r}: expected {self.width} values in signature order, got {len(row)}", field="inputs"
                )
            return row
        raise ValidationError(f"row {r}: must be an object keyed by feature name or a list", field="inputs")


def _inward(bounds: np.ndarray, *, up: bool) -> np.ndarray:
    """float32 bounds such that, for float32 x, ``x >= lo32`` iff ``x >= lo`` (and likewise for hi)."""
    big = np.float32(np.finfo(np.float32).max)
    clipped = np.clip(bounds, -float(big), float(big))
    narrow = clipped.astype(np.float32)
    if up:
        narrow = np.where(narrow.astype(np.float64) < clipped, np.nextafter(narrow, np.float32(np.inf)), narrow)
    else:
        narrow = np.where(narrow.astype(np.float64) > clipped, np.nextafter(narrow, np.float32(-np.inf)), narrow)
    result: np.ndarray = narrow.astype(np.float32)
    return result


def _lower(feature: Feature, holds: float) -> float:
    return -holds if feature.minimum is None else max(feature.minimum, -holds)


def _upper(feature: Feature, holds: float) -> float:
    return holds if feature.maximum is None else min(feature.maximum, holds)


def _check_range(feature: Feature, column: np.ndarray, holds: float) -> None:
    with np.errstate(invalid="ignore"):
        past = np.abs(column) > holds
    if past.any():
        row = int(np.argmax(past))
        raise ValidationError(
            f"row {row}: feature {feature.name!r} is {column[row]:g}, beyond what the model's numbers hold "
            f"(magnitude at most {holds:g})",
            field=feature.name,
        )
    if feature.minimum is not None:
        low = column < feature.minimum
        if low.any():
            row = int(np.argmax(low))
            raise ValidationError(
                f"row {row}: feature {feature.name!r} is {column[row]:g}, below the minimum {feature.minimum:g}",
                field=feature.name,
            )
    if feature.maximum is not None:
        high = column > feature.maximum
        if high.any():
            row = int(np.argmax(high))
            raise ValidationError(
                f"row {row}: feature {feature.name!r} is {column[row]:g}, above the maximum {feature.maximum:g}",
                field=feature.name,
            )


def _quoted(value: Any) -> str:
    """A refused value as a problem may quote it: text cut to 40 characters, identifiers masked (``[EMAIL]``...)."""
    if not isinstance(value, str):
        return repr(value)
    from mlwarden.privacy.identifiers import mask

    return repr(mask(value[:400])[:40])


def _check_allowed(feature: Feature, column: np.ndarray) -> None:
    allowed = feature.allowed or ()
    if column.dtype == object:
        known = set(allowed)
        for row, value in enumerate(column):
            if value in known or (feature.allow_nan and value is _MISSING):
                continue
            what = "a category the model knows" if feature.dtype == "categorical" else "one of the allowed values"
            message = f"row {row}: feature {feature.name!r} value {_quoted(value)} is not {what}"
            raise ValidationError(message, field=feature.name)
        return
    ok = np.isin(column, np.asarray(allowed, dtype=np.float64))
    if feature.allow_nan:
        ok |= np.isnan(column)
    if not ok.all():
        row = int(np.argmin(ok))
        raise ValidationError(
            f"row {row}: feature {feature.name!r} value {column[row]:g} is not one of the allowed values",
            field=feature.name,
        )


def _plain_numbers(rows: Sequence[list[Any]]) -> bool:
    """Only ints and floats: NumPy would silently turn ``true`` into 1.0 and ``"12.5"`` into 12.5.

    Rows holding anything else take the slow path, which names the cell.
    """
    return set(map(type, itertools.chain.from_iterable(rows))) <= {int, float}


def _column(feature: Feature, values: list[Any]) -> np.ndarray:
    """One checked column of a mixed batch: objects for text features, numbers otherwise."""
    if feature.is_text:
        array = np.array(values, dtype=object)
        if feature.checks_categories:
            _check_allowed(feature, array)
        return array
    array = np.array(values, dtype=np.float64)
    _check_range(feature, array, representable(feature, None))
    if feature.dtype in ("int64", "int32"):
        with np.errstate(invalid="ignore"):
            fractional = (array != np.floor(array)) & ~np.isnan(array)
        if fractional.any():
            row = int(np.argmax(fractional))
            raise ValidationError(f"row {row}: feature {feature.name!r} must be an integer", field=feature.name)
    if feature.allowed is not None:
        _check_allowed(feature, array)
    return array


def _coerce(feature: Feature, value: Any, row: int) -> Any:
    if value is None:
        if feature.required and not feature.allow_nan:
            raise ValidationError(f"row {row}: feature {feature.name!r} is null", field=feature.name)
        return _MISSING if feature.is_text else math.nan
    if feature.is_text:
        if not isinstance(value, str):
            raise ValidationError(
                f"row {row}: feature {feature.name!r} must be a string, got {type(value).__name__}", field=feature.name
            )
        return value
    if feature.dtype == "bool":
        if not isinstance(value, bool):
            raise ValidationError(f"row {row}: feature {feature.name!r} must be true or false", field=feature.name)
        return float(value)
    if not is_number(value):
        shown = f" {_quoted(value)} (strings are never read as numbers)" if isinstance(value, str) else ""
        raise ValidationError(
            f"row {row}: feature {feature.name!r} must be a number, got {type(value).__name__}{shown}",
            field=feature.name,
        )
    if isinstance(value, float) and not math.isfinite(value) and not feature.allow_nan:
        raise ValidationError(f"row {row}: feature {feature.name!r} is NaN or infinite", field=feature.name)
    try:
        return float(value)
    except OverflowError as exc:
        message = f"row {row}: feature {feature.name!r} is too large for a float"
        raise ValidationError(message, field=feature.name) from exc
