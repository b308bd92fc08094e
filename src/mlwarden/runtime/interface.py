"""What every model loader provides: an input signature and a predict function."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from mlwarden.runtime.signature import InputSignature


class LoadedModel(Protocol):
    """A model ready to serve. ``predict`` takes validated input and returns one dict per row."""

    signature: InputSignature

    def predict(self, inputs: np.ndarray | dict[str, np.ndarray]) -> list[dict[str, Any]]: ...


def rows_from_outputs(names: list[str], outputs: list[Any], count: int) -> list[dict[str, Any]]:
    """Turn per-output arrays (or lists of dicts) into one JSON-able dict per row."""
    rows: list[dict[str, Any]] = [{} for _ in range(count)]
    for name, value in zip(names, outputs, strict=True):
        if isinstance(value, np.ndarray):
            values = value.reshape(count, -1) if value.ndim > 1 else value.reshape(count)
            for i in range(count):
                item = values[i]
                rows[i][name] = item.tolist() if isinstance(item, np.ndarray) else _scalar(item)
        elif isinstance(value, list) and len(value) == count:
            for i in range(count):
                entry = value[i]
                rows[i][name] = {str(k): float(v) for k, v in entry.items()} if isinstance(entry, dict) else entry
    return rows


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
