"""What every model loader provides: an input signature and a predict function."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import numpy as np

from mlwarden.runtime.signature import InputSignature


class Outputs(NamedTuple):
    """A batch's raw outputs by name; :meth:`rows` makes the per-row JSON only when asked."""

    names: list[str]
    values: list[Any]
    size: int

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-able dict per input row."""
        return rows_from_outputs(self.names, self.values, self.size)


class LoadedModel(Protocol):
    """A model ready to serve. ``predict`` takes validated input (see ``Validator``)."""

    signature: InputSignature

    def predict(self, inputs: np.ndarray | dict[str, np.ndarray]) -> Outputs: ...


def rows_from_outputs(names: list[str], outputs: list[Any], count: int) -> list[dict[str, Any]]:
    """Turn per-output arrays (or lists of dicts) into one JSON-able dict per row."""
    columns: list[list[Any]] = []
    for value in outputs:
        if isinstance(value, np.ndarray):
            shaped = value.reshape(count, -1) if value.ndim > 1 else value.reshape(count)
            columns.append(shaped.tolist())  # one C-level conversion per output, not per row
        elif isinstance(value, list) and len(value) == count:
            columns.append([{str(k): float(v) for k, v in e.items()} if isinstance(e, dict) else e for e in value])
        else:
            columns.append([None] * count)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
