"""A model's input signature and the validation every request passes before inference."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mlwarden.errors import InvalidInput, ValidationError

NUMERIC = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32}
DTYPES = frozenset({*NUMERIC, "string", "bool"})
MAX_ROWS = 100_000


@dataclass(frozen=True, slots=True)
class Feature:
    """One input feature: its name, type and the values it accepts."""

    name: str
    dtype: str = "float32"
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[Any, ...] | None = None
    required: bool = True
    allow_nan: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "required": self.required}
        if self.minimum is not None:
            out["min"] = self.minimum
        if self.maximum is not None:
            out["max"] = self.maximum
        if self.allowed is not None:
            out["allowed"] = list(self.allowed)
        if self.allow_nan:
            out["allow_nan"] = True
        return out


@dataclass(frozen=True, slots=True)
class InputSignature:
    """Features in order; ``layout`` is ``tensor`` (one 2-D input named ``input_name``) or ``columns``."""

    features: tuple[Feature, ...]
    layout: str = "tensor"
    input_name: str = "X"
    tensor_dtype: str = "float32"

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def to_json(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "input": self.input_name,
            "tensor_dtype": self.tensor_dtype,
            "features": [f.to_json() for f in self.features],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> InputSignature:
        feats = tuple(
            Feature(
                name=str(f["name"]),
                dtype=str(f.get("dtype", "float32")),
                minimum=f.get("min"),
                maximum=f.get("max"),
                allowed=tuple(f["allowed"]) if f.get("allowed") is not None else None,
                required=bool(f.get("required", True)),
                allow_nan=bool(f.get("allow_nan", False)),
            )
            for f in obj["features"]
        )
        return cls(
            feats, str(obj.get("layout", "tensor")), str(obj.get("input", "X")), str(obj.get("tensor_dtype", "float32"))
        )

    def narrow(self, spec: dict[str, Any]) -> InputSignature:
        """Apply a signature file: rename features and add ranges, allowed values, requiredness.

        ``spec["features"]`` is a list with one object per model feature, in order.
        """
        given = spec.get("features")
        if not isinstance(given, list) or len(given) != len(self.features):
            raise InvalidInput(
                f"signature file must list {len(self.features)} features (the model's inputs), "
                f"got {len(given) if isinstance(given, list) else 'none'}"
            )
        narrowed = []
        for base, item in zip(self.features, given, strict=True):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise InvalidInput("each signature feature needs a string 'name'")
            dtype = str(item.get("dtype", base.dtype))
            if dtype not in DTYPES:
                raise InvalidInput(f"feature {item['name']!r}: unknown dtype {dtype!r}")
            for bound in ("min", "max"):
                if item.get(bound) is not None and not _is_number(item[bound]):
                    raise InvalidInput(f"feature {item['name']!r}: {bound} must be a number")
            allowed = item.get("allowed")
            if allowed is not None and not isinstance(allowed, list):
                raise InvalidInput(f"feature {item['name']!r}: allowed must be a list")
            narrowed.append(
                replace(
                    base,
                    name=item["name"],
                    dtype=dtype if base.dtype == "string" or dtype != "string" else base.dtype,
                    minimum=item.get("min", base.minimum),
                    maximum=item.get("max", base.maximum),
                    allowed=tuple(allowed) if allowed is not None else base.allowed,
                    required=bool(item.get("required", base.required)),
                    allow_nan=bool(item.get("allow_nan", base.allow_nan)),
                )
            )
        names = [f.name for f in narrowed]
        if len(set(names)) != len(names):
            raise InvalidInput("signature file names a feature twice")
        return replace(self, features=tuple(narrowed))

    # ------------------------------------------------------------------ validation
    def validate(self, rows: Any) -> np.ndarray | dict[str, np.ndarray]:
        """Check rows against the signature; return model input or raise :class:`ValidationError`."""
        if isinstance(rows, np.ndarray):
            return self._check_matrix(rows)
        if not isinstance(rows, list) or not rows:
            raise ValidationError("inputs must be a non-empty list of rows", field="inputs")
        if len(rows) > MAX_ROWS:
            raise ValidationError(f"at most {MAX_ROWS} rows per request, got {len(rows)}", field="inputs")
        numeric = all(f.dtype in NUMERIC for f in self.features)
        if numeric and self.layout == "tensor" and all(type(r) is list for r in rows):
            try:
                matrix = np.asarray(rows, dtype=np.float64)
            except (ValueError, TypeError):
                matrix = None
            fits = matrix is not None and matrix.ndim == 2 and matrix.shape[1] == len(self.features)
            if fits and matrix is not None and not _has_bools(rows):
                return self._check_matrix(matrix)
        return self._slow(rows)

    def _check_matrix(self, matrix: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
        width = len(self.features)
        if matrix.ndim != 2 or matrix.shape[1] != width:
            raise ValidationError(f"inputs must have shape (rows, {width}), got {matrix.shape}", field="inputs")
        if not np.issubdtype(matrix.dtype, np.number) or np.issubdtype(matrix.dtype, np.complexfloating):
            raise ValidationError(f"inputs must be numbers, got {matrix.dtype}", field="inputs")
        bad = ~np.isfinite(matrix) if np.issubdtype(matrix.dtype, np.floating) else None
        for j, feature in enumerate(self.features):
            column = matrix[:, j]
            if bad is not None and not feature.allow_nan and bad[:, j].any():
                row = int(np.argmax(bad[:, j]))
                raise ValidationError(f"row {row}: feature {feature.name!r} is NaN or infinite", field=feature.name)
            self._check_column(feature, column)
        return self._shape(matrix)

    def _check_column(self, feature: Feature, column: np.ndarray) -> None:
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
        if feature.allowed is not None:
            ok = np.isin(column, np.asarray(feature.allowed, dtype=column.dtype))
            if not ok.all():
                row = int(np.argmin(ok))
                raise ValidationError(
                    f"row {row}: feature {feature.name!r} value {column[row]!r} is not one of the allowed values",
                    field=feature.name,
                )
        if feature.dtype in ("int64", "int32"):
            frac = column != np.round(column)
            if frac.any():
                row = int(np.argmax(frac))
                raise ValidationError(f"row {row}: feature {feature.name!r} must be an integer", field=feature.name)

    def _shape(self, matrix: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
        if self.layout == "tensor":
            return np.ascontiguousarray(matrix, dtype=NUMERIC.get(self.tensor_dtype, np.float32))
        return {
            f.name: matrix[:, j].astype(NUMERIC.get(f.dtype, np.float32)).reshape(-1, 1)
            for j, f in enumerate(self.features)
        }

    def _slow(self, rows: list[Any]) -> np.ndarray | dict[str, np.ndarray]:
        """Row-by-row checks that name the row and the feature; used when the fast path cannot."""
        names = self.names
        index = {n: j for j, n in enumerate(names)}
        columns: list[list[Any]] = [[] for _ in names]
        for r, row in enumerate(rows):
            if isinstance(row, dict):
                unknown = [k for k in row if k not in index]
                if unknown:
                    raise ValidationError(f"row {r}: unknown feature {unknown[0]!r}", field=str(unknown[0]))
                values: list[Any] = []
                for feature in self.features:
                    if feature.name not in row:
                        if feature.required:
                            raise ValidationError(f"row {r}: missing feature {feature.name!r}", field=feature.name)
                        values.append(None)
                    else:
                        values.append(row[feature.name])
            elif isinstance(row, list):
                if len(row) != len(names):
                    raise ValidationError(
                        f"row {r}: expected {len(names)} values in signature order, got {len(row)}", field="inputs"
                    )
                values = row
            else:
                raise ValidationError(f"row {r}: must be an object keyed by feature name or a list", field="inputs")
            for j, (feature, value) in enumerate(zip(self.features, values, strict=True)):
                columns[j].append(_coerce(feature, value, r))
        if all(f.dtype in NUMERIC or f.dtype == "bool" for f in self.features):
            matrix = np.array(columns, dtype=np.float64).T
            return self._check_matrix(matrix)
        out: dict[str, np.ndarray] = {}
        for feature, column in zip(self.features, columns, strict=True):
            array = np.array(column, dtype=object if feature.dtype == "string" else np.float64)
            if feature.dtype != "string":
                self._check_column(feature, array)
            elif feature.allowed is not None:
                for r, value in enumerate(column):
                    if value not in feature.allowed:
                        raise ValidationError(
                            f"row {r}: feature {feature.name!r} value {value!r} is not one of the allowed values",
                            field=feature.name,
                        )
            out[feature.name] = array.reshape(-1, 1) if self.layout == "columns" else array
        if self.layout == "tensor":
            raise ValidationError("mixed string and numeric features need a per-column model input", field="inputs")
        return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _has_bools(rows: Sequence[list[Any]]) -> bool:
    """JSON true/false would silently become 1.0/0.0 in a float matrix; such rows take the slow path."""
    return bool in set(map(type, itertools.chain.from_iterable(rows)))


def _coerce(feature: Feature, value: Any, row: int) -> Any:
    if value is None:
        if feature.required and not feature.allow_nan:
            raise ValidationError(f"row {row}: feature {feature.name!r} is null", field=feature.name)
        return math.nan
    if feature.dtype == "string":
        if not isinstance(value, str):
            raise ValidationError(
                f"row {row}: feature {feature.name!r} must be a string, got {type(value).__name__}", field=feature.name
            )
        return value
    if feature.dtype == "bool":
        if not isinstance(value, bool):
            raise ValidationError(f"row {row}: feature {feature.name!r} must be true or false", field=feature.name)
        return float(value)
    if not _is_number(value):
        raise ValidationError(
            f"row {row}: feature {feature.name!r} must be a number, got {type(value).__name__}", field=feature.name
        )
    if isinstance(value, float) and not math.isfinite(value) and not feature.allow_nan:
        raise ValidationError(f"row {row}: feature {feature.name!r} is NaN or infinite", field=feature.name)
    return float(value)
