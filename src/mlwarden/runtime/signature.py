"""A model's input signature and the validation every request passes before inference."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mlwarden.errors import InvalidInput

NUMERIC = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32}
TEXT = frozenset({"string", "categorical"})
"""Features that take JSON strings: any string, or one of a model's categories."""
DTYPES = frozenset({*NUMERIC, *TEXT, "bool"})
ALIASES = {"number": "float64", "integer": "int64"}
"""Signature-file spellings: ``number`` keeps the model's numeric type, ``integer`` requires whole numbers."""
UNKNOWN = ("error", "ignore")
LAYOUTS = ("tensor", "columns", "frame")
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
    unknown: str = "error"
    """For ``categorical``: ``ignore`` when the model's encoder accepts categories it never saw."""

    @property
    def is_text(self) -> bool:
        return self.dtype in TEXT

    @property
    def checks_categories(self) -> bool:
        """Values outside ``allowed`` are refused (categorical features whose encoder would fail on them)."""
        return self.allowed is not None and not (self.dtype == "categorical" and self.unknown == "ignore")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "required": self.required}
        if self.minimum is not None:
            out["min"] = self.minimum
        if self.maximum is not None:
            out["max"] = self.maximum
        if self.allowed is not None:
            out["categories" if self.dtype == "categorical" else "allowed"] = list(self.allowed)
        if self.dtype == "categorical" and self.unknown != "error":
            out["unknown"] = self.unknown
        if self.allow_nan:
            out["allow_nan"] = True
        return out


@dataclass(frozen=True, slots=True)
class InputSignature:
    """Features in order, and the shape the model takes them in.

    ``layout`` is ``tensor`` (one 2-D input named ``input_name``), ``columns`` (one ``(rows, 1)``
    input per feature, as ONNX graphs with several inputs take them) or ``frame`` (named columns
    of mixed types, as a scikit-learn pipeline with a ``ColumnTransformer`` takes them).
    """

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

    @property
    def has_text(self) -> bool:
        return any(f.is_text for f in self.features)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> InputSignature:
        feats = tuple(
            Feature(
                name=str(f["name"]),
                dtype=str(f.get("dtype", "float32")),
                minimum=f.get("min"),
                maximum=f.get("max"),
                allowed=_listed(f),
                required=bool(f.get("required", True)),
                allow_nan=bool(f.get("allow_nan", False)),
                unknown=str(f.get("unknown", "error")),
            )
            for f in obj["features"]
        )
        return cls(
            feats, str(obj.get("layout", "tensor")), str(obj.get("input", "X")), str(obj.get("tensor_dtype", "float32"))
        )

    def narrow(self, spec: dict[str, Any]) -> InputSignature:
        """Apply a signature file: rename features, narrow types, add ranges, categories, requiredness.

        ``spec["features"]`` is a list with one object per model feature, in order. A file may
        narrow what the model says (a number to an integer, a string to a category, fewer
        categories) but never contradict it: text where the model takes numbers, or the other
        way round, is refused rather than ignored.
        """
        given = spec.get("features")
        if not isinstance(given, list) or len(given) != len(self.features):
            raise InvalidInput(
                f"signature file must list {len(self.features)} features (the model's inputs), "
                f"got {len(given) if isinstance(given, list) else 'none'}"
            )
        narrowed = [narrow_feature(base, item) for base, item in zip(self.features, given, strict=True)]
        names = [f.name for f in narrowed]
        if len(set(names)) != len(names):
            raise InvalidInput("signature file names a feature twice")
        return replace(self, features=tuple(narrowed))

    def validate(self, rows: Any) -> np.ndarray | dict[str, np.ndarray]:
        """Check rows against the signature (see :class:`mlwarden.runtime.validator.Validator`)."""
        from mlwarden.runtime.validator import Validator

        return Validator(self).validate(rows)


def is_number(value: Any) -> bool:
    """An int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _listed(item: dict[str, Any]) -> tuple[Any, ...] | None:
    values = item.get("categories", item.get("allowed"))
    return tuple(values) if values is not None else None


def narrow_feature(base: Feature, item: Any) -> Feature:
    """``base`` as one entry of a signature file narrows it; anything contradicting the model is refused."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise InvalidInput("each signature feature needs a string 'name'")
    name = item["name"]
    dtype = _narrow_dtype(base, name, str(item.get("dtype", base.dtype)))
    for bound in ("min", "max"):
        if item.get(bound) is not None and (not is_number(item[bound]) or dtype in TEXT):
            raise InvalidInput(f"feature {name!r}: {bound} must be a number, and only numeric features take one")
    if "categories" in item and "allowed" in item:
        raise InvalidInput(f"feature {name!r}: give categories or allowed, not both")
    listed = item.get("categories", item.get("allowed"))
    if listed is not None and not isinstance(listed, list):
        raise InvalidInput(f"feature {name!r}: categories / allowed must be a list")
    unknown = str(item.get("unknown", base.unknown))
    if unknown not in UNKNOWN or (unknown == "ignore" and base.unknown != "ignore"):
        raise InvalidInput(
            f"feature {name!r}: unknown must be 'error' (or 'ignore' when the model's encoder ignores unknown "
            f"categories), got {unknown!r}"
        )
    allowed = _narrow_allowed(base, name, dtype, tuple(listed) if listed is not None else None)
    return replace(
        base,
        name=name,
        dtype=dtype,
        minimum=item.get("min", base.minimum),
        maximum=item.get("max", base.maximum),
        allowed=allowed,
        required=bool(item.get("required", base.required)),
        allow_nan=bool(item.get("allow_nan", base.allow_nan)),
        unknown=unknown,
    )


def _narrow_dtype(base: Feature, name: str, given: str) -> str:
    dtype = given
    if dtype == "number":
        dtype = base.dtype if base.dtype in NUMERIC else ALIASES[dtype]
    elif dtype == "integer":
        dtype = base.dtype if base.dtype in ("int64", "int32") else ALIASES[dtype]
    if dtype not in DTYPES:
        raise InvalidInput(
            f"feature {name!r}: unknown dtype {dtype!r}; use number, integer, string, categorical, bool "
            "or a tensor type (float32, float64, int32, int64)"
        )
    if base.is_text != (dtype in TEXT) or (dtype == "bool") != (base.dtype == "bool"):
        raise InvalidInput(f"feature {name!r}: the model takes {base.dtype} values, the signature file says {given}")
    if base.dtype == "categorical" and dtype == "string":
        return base.dtype  # the model's categories still hold; "string" says nothing narrower
    return dtype


def _narrow_allowed(base: Feature, name: str, dtype: str, listed: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    if listed is None:
        return base.allowed
    wanted = str if dtype in TEXT else None
    for value in listed:
        if (wanted is str and not isinstance(value, str)) or (wanted is None and not is_number(value)):
            raise InvalidInput(f"feature {name!r}: value {value!r} in categories / allowed is not a {dtype} value")
    if base.checks_categories:
        unknown = [v for v in listed if v not in (base.allowed or ())]
        if unknown:
            raise InvalidInput(
                f"feature {name!r}: categories {unknown!r} are not ones the model knows (it would fail on them)"
            )
    return listed
