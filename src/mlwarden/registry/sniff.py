"""Tell a model file's real format from its bytes, and refuse anything that can run code.

The extension is a hint, never trusted: a pickle named ``model.onnx`` is a pickle. Served
formats are ONNX and skops; safetensors may be registered as weights. The whole pickle
family is refused with the imports the static scan found: anything an unpickler would
load or act on (decided by walking opcodes, whatever the first byte), joblib dumps (also
compressed), PyTorch zip archives with ``data.pkl``, NumPy files whose dtype holds
objects, and any of these inside zip, tar or compressed streams at any depth (one
decompression budget for all levels, see :mod:`mlwarden.registry.archives`).
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass

import numpy as np
from numpy.lib import format as npy_format

from mlwarden.errors import InvalidInput, UnsafeArtifact
from mlwarden.registry.archives import (
    ExpansionBudget,
    check_depth,
    expand_stream,
    is_tar,
    is_zip,
    tar_members,
    zip_members,
    zip_names,
)
from mlwarden.registry.pickles import PickleScan, is_pickle, scan_pickle

ONNX = "onnx"
SKOPS = "skops"
SAFETENSORS = "safetensors"
SERVED = frozenset({ONNX, SKOPS})
_NPY_MAX_HEADER = 100_000


@dataclass(frozen=True, slots=True)
class ArtifactFormat:
    """What a file really is."""

    name: str
    servable: bool
    detail: str = ""


def _refuse(kind: str, where: str, scan: PickleScan) -> UnsafeArtifact:
    if scan.dangerous:
        what = "dangerous imports " + ", ".join(scan.dangerous)
    elif scan.imports:
        what = "imports " + ", ".join(scan.imports[:10])
    else:
        what = "no imports found, but pickles are never loaded"
    incomplete = "" if scan.complete else " (scan incomplete: malformed stream)"
    return UnsafeArtifact(
        f"refused {where}: it is a {kind}, which runs code when loaded; {what}{incomplete}",
        found=scan.dangerous or scan.imports,
        kind=kind,
    )


def npy_dtype(data: bytes, where: str) -> tuple[np.dtype[np.generic], int]:
    """The dtype of a ``.npy`` file and where its data starts, read by NumPy's own header parser."""
    stream = io.BytesIO(data)
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            _shape, _order, dtype = npy_format.read_array_header_1_0(stream, max_header_size=_NPY_MAX_HEADER)
        elif version == (2, 0):
            _shape, _order, dtype = npy_format.read_array_header_2_0(stream, max_header_size=_NPY_MAX_HEADER)
        else:  # 3.0 (utf-8 header) has no public reader; NumPy's own private one, as np.load uses
            read = getattr(npy_format, "_read_array_header")  # noqa: B009 (private, untyped)
            _shape, _order, dtype = read(stream, version, max_header_size=_NPY_MAX_HEADER)
    except (ValueError, TypeError, SyntaxError, EOFError, OSError) as exc:
        raise InvalidInput(f"{where} has a malformed NumPy header: {str(exc)[:200]}") from exc
    return dtype, stream.tell()


def _check_npy(data: bytes, where: str) -> None:
    dtype, offset = npy_dtype(data, where)
    if dtype.hasobject:  # object fields anywhere: plain, structured, sub-array
        raise _refuse(f"NumPy array of dtype {dtype.str if dtype.names is None else 'structured'} holding objects",
                      where, scan_pickle(data[offset:]))  # fmt: skip


def _check_bytes(data: bytes, where: str, budget: ExpansionBudget, depth: int = 0) -> None:
    """Refuse ``data`` if it is, or hides at any depth, anything of the pickle family."""
    check_depth(depth, where)
    if is_pickle(data):
        raise _refuse("pickle", where, scan_pickle(data))
    if data.startswith(b"\x93NUMPY"):
        _check_npy(data, where)
        return
    expanded = expand_stream(data, where, budget)
    if expanded is not None:
        kind, content = expanded
        if is_pickle(content):
            raise _refuse(f"{kind}-compressed pickle (joblib)", where, scan_pickle(content))
        _check_bytes(content, f"{where}({kind})", budget, depth + 1)
    elif is_zip(data):
        for name, content in zip_members(data, where, budget):
            inner = f"{where}:{name}"
            if name.rsplit("/", 1)[-1].endswith("data.pkl"):
                raise _refuse("PyTorch pickle archive", inner, scan_pickle(content))
            _check_bytes(content, inner, budget, depth + 1)
    elif is_tar(data):
        for name, content in tar_members(data, where, budget):
            _check_bytes(content, f"{where}:{name}", budget, depth + 1)


def _zip_format(data: bytes, where: str) -> ArtifactFormat:
    names = set(zip_names(data, where))
    if "schema.json" in names:
        return ArtifactFormat(SKOPS, True)
    if names and all(n.endswith(".npy") for n in names):
        return ArtifactFormat("npz", False, "NumPy archive (recorded, not served)")
    return ArtifactFormat("zip", False, "zip archive (recorded, not served)")


def _is_safetensors(data: bytes) -> bool:
    if len(data) < 10:
        return False
    (length,) = struct.unpack("<Q", data[:8])
    if not 2 <= length <= len(data) - 8 or data[8:9] != b"{":
        return False
    try:
        header = json.loads(data[8 : 8 + length])
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(header, dict)


def _is_onnx(data: bytes, where: str) -> bool:
    """Whether ``data`` is an ONNX model; refuses one that keeps tensors outside its bytes."""
    import onnx

    from mlwarden.runtime.onnx_checks import check_self_contained, parse_onnx

    try:
        model = parse_onnx(data, where)
    except InvalidInput:
        return False
    check_self_contained(model, where)  # before the checker, which would look for the files
    try:
        onnx.checker.check_model(model)
    except Exception:  # any check failure means "not an ONNX model"
        return False
    return len(model.graph.node) > 0


def detect_format(data: bytes, filename: str) -> ArtifactFormat:
    """The real format of a model file; raises :class:`UnsafeArtifact` for the pickle family."""
    where = filename or "artifact"
    if not data:
        raise InvalidInput(f"{where} is empty")
    _check_bytes(data, where, ExpansionBudget())
    if is_zip(data):
        return _zip_format(data, where)
    if data.startswith(b"\x93NUMPY"):
        return ArtifactFormat("npy", False, "NumPy array (recorded, not served)")
    if _is_safetensors(data):
        return ArtifactFormat(SAFETENSORS, False, "weights (recorded, not served)")
    if _is_onnx(data, where):
        return ArtifactFormat(ONNX, True)
    raise InvalidInput(f"{where} is not a format mlwarden can register: expected ONNX, skops or safetensors")
