"""A model's input signature and the validation every request passes before inference."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mlwarden.errors import InvalidInput

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
                if item.get(bound) is not None and not is_number(item[bound]):
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

    def validate(self, rows: Any) -> np.ndarray | dict[str, np.ndarray]:
        """Check rows against the signature (see :class:`mlwarden.runtime.validator.Validator`)."""
        from mlwarden.runtime.validator import Validator

        return Validator(self).validate(rows)


def is_number(value: Any) -> bool:
    """An int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)
