"""The stored form of a :class:`FittedReference`: an ``.npz`` of plain number arrays plus a JSON header.

Never pickle: every array is a float64 or int64 array read with ``allow_pickle=False``; names,
labels and category counts live in the JSON header. Reading checks the format, the array
names, dtypes and shapes against the header, and raises :class:`DetectorFileError` (never a
raw ``ValueError``) for anything else. Callers authenticate the bytes before parsing them.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

from mlwarden.data.fitted_reference import FittedReference
from mlwarden.data.label_judges import LabelJudges
from mlwarden.data.outliers import EcodReference
from mlwarden.errors import ArtifactIntegrityError

FORMAT = 1
"""Bumped whenever fitting or the stored layout changes: detectors of another format are refitted."""
_JUDGE_ARRAYS = ("mean", "scale", "reference", "reference_labels", "coef", "intercept")


_UNREADABLE = (
    OSError, EOFError, ValueError, KeyError, TypeError, AttributeError, NotImplementedError, zipfile.BadZipFile,
)  # fmt: skip
"""What numpy's zip and array readers raise for bytes that are not a well-formed file of ours."""


class DetectorFileError(ArtifactIntegrityError):
    """A stored detector file that cannot be read as this format."""


def to_bytes(fitted: FittedReference) -> bytes:
    """The file's bytes."""
    arrays: dict[str, np.ndarray] = {f"values_{i}": v for i, v in enumerate(fitted.values)}
    header: dict[str, Any] = {
        "format": FORMAT, "numeric": list(fitted.numeric), "label": fitted.label, "categories": fitted.categories,
        "outliers": None, "judges": None,
    }  # fmt: skip
    if fitted.outliers is not None:
        arrays["ecod_sorted"] = fitted.outliers.sorted_columns
        header["outliers"] = {"threshold": fitted.outliers.threshold}
    if fitted.judges is not None:
        judges = fitted.judges
        arrays.update({f"judge_{name}": getattr(judges, name) for name in _JUDGE_ARRAYS})
        header["judges"] = {"classes": judges.classes.tolist(), "natural": judges.natural}
    arrays["header"] = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
    out = io.BytesIO()
    np.savez(out, allow_pickle=False, **{k: np.ascontiguousarray(v) for k, v in sorted(arrays.items())})
    return out.getvalue()


def from_bytes(data: bytes, what: str) -> FittedReference:
    """Parse the file's bytes; :class:`DetectorFileError` names ``what`` when they are not this format."""
    try:
        if not data.startswith(b"PK\x03\x04"):
            raise ValueError("not an npz (zip) file")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        header = json.loads(arrays.pop("header").tobytes().decode())
        return _build(header, arrays)
    except _UNREADABLE as exc:
        raise DetectorFileError(f"{what}: stored screening detectors cannot be read: {exc}") from exc


def _array(arrays: dict[str, np.ndarray], name: str, kind: str, ndim: int) -> np.ndarray:
    value = arrays[name]
    if value.dtype.kind != kind or value.ndim != ndim:
        raise ValueError(f"array {name} is {value.dtype}{value.shape}, expected kind {kind!r} with {ndim} dimension(s)")
    return value


def _build(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> FittedReference:
    if header.get("format") != FORMAT:
        raise ValueError(f"format {header.get('format')!r}, expected {FORMAT}")
    numeric = tuple(str(c) for c in header["numeric"])
    values = tuple(_array(arrays, f"values_{i}", "f", 1) for i in range(len(numeric)))
    categories = {str(c): {str(v): int(n) for v, n in counts.items()} for c, counts in header["categories"].items()}
    outliers = None
    if header["outliers"] is not None:
        ecod_sorted = _array(arrays, "ecod_sorted", "f", 2)
        if ecod_sorted.shape[1] != len(numeric) or not len(ecod_sorted):
            raise ValueError("outlier detector arrays do not match the columns")
        outliers = EcodReference(ecod_sorted, float(header["outliers"]["threshold"]))
    judges = None
    if header["judges"] is not None:
        judges = _judges(header["judges"], arrays, len(numeric))
    label = None if header["label"] is None else str(header["label"])
    return FittedReference(numeric, label, values, categories, outliers, judges)


def _judges(header: dict[str, Any], arrays: dict[str, np.ndarray], width: int) -> LabelJudges:
    classes = header["classes"]
    if not isinstance(classes, list) or not classes:
        raise ValueError("label judges have no classes")
    parts = {
        name: _array(arrays, f"judge_{name}", kind, ndim)
        for name, kind, ndim in (
            ("mean", "f", 1), ("scale", "f", 1), ("reference", "f", 2), ("reference_labels", "i", 1),
            ("coef", "f", 2), ("intercept", "f", 1),
        )
    }  # fmt: skip
    rows = parts["reference"].shape[0]
    models = 1 if len(classes) == 2 else len(classes)
    shapes_ok = (
        parts["mean"].shape == parts["scale"].shape == (width,)
        and parts["reference"].shape == (rows, width)
        and rows >= 2
        and parts["reference_labels"].shape == (rows,)
        and parts["coef"].shape == (models, width)
        and parts["intercept"].shape == (models,)
        and int(parts["reference_labels"].min()) >= 0
        and int(parts["reference_labels"].max()) < len(classes)
    )
    if not shapes_ok:
        raise ValueError("label judge arrays do not match the columns and classes")
    kind = object if all(isinstance(c, str) for c in classes) else None
    return LabelJudges(classes=np.asarray(classes, dtype=kind), natural=float(header["natural"]), **parts)
