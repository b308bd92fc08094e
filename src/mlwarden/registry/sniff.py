"""Tell a model file's real format from its bytes, and refuse anything that can run code.

The extension is a hint, never trusted: a pickle named ``model.onnx`` is a pickle. Served
formats are ONNX and skops; safetensors may be registered as weights. The whole pickle
family — raw pickles of any protocol, joblib dumps (also compressed), PyTorch zip archives
with ``data.pkl``, NumPy files holding object arrays, and any zip member that is one of
these — is refused with the imports the static scan found.
"""

from __future__ import annotations

import ast
import bz2
import gzip
import io
import json
import lzma
import struct
import zipfile
import zlib
from dataclasses import dataclass

from mlwarden.errors import InvalidInput, UnsafeArtifact
from mlwarden.registry.pickles import PickleScan, is_pickle, scan_pickle

MAX_EXPANDED = 1 << 30
"""Largest decompressed size examined (a bomb beyond it is refused)."""
MAX_ZIP_MEMBERS = 100_000

ONNX = "onnx"
SKOPS = "skops"
SAFETENSORS = "safetensors"
SERVED = frozenset({ONNX, SKOPS})


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


def _decompress(data: bytes) -> tuple[str, bytes] | None:
    """Undo the compressions joblib uses; None when ``data`` is not compressed."""
    try:
        if data[:2] == b"\x1f\x8b":
            return "gzip", gzip.GzipFile(fileobj=io.BytesIO(data)).read(MAX_EXPANDED)
        if data[:3] == b"BZh":
            return "bz2", bz2.BZ2Decompressor().decompress(data, MAX_EXPANDED)
        if data[:6] == b"\xfd7zXZ\x00" or data[:3] == b"\x5d\x00\x00":
            return "lzma", lzma.LZMADecompressor().decompress(data, MAX_EXPANDED)
        if data[:2] == b"ZF":  # joblib's own zlib container: "ZF0x" + length + zlib stream
            return "zlib", zlib.decompressobj().decompress(data[data.index(b"x") :], MAX_EXPANDED)
        if len(data) > 2 and data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0:
            return "zlib", zlib.decompressobj().decompress(data, MAX_EXPANDED)
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error):
        return None
    return None


def _npy_header(data: bytes) -> dict[str, object] | None:
    if not data.startswith(b"\x93NUMPY") or len(data) < 10:
        return None
    major = data[6]
    if major == 1:
        (length,) = struct.unpack("<H", data[8:10])
        start = 10
    else:
        (length,) = struct.unpack("<I", data[8:12])
        start = 12
    try:
        header = ast.literal_eval(data[start : start + length].decode("latin1"))
    except (ValueError, SyntaxError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"malformed NumPy header: {exc}") from exc
    if not isinstance(header, dict):
        raise InvalidInput("malformed NumPy header")
    header["_offset"] = start + length
    return header


def _check_npy(data: bytes, where: str) -> None:
    header = _npy_header(data)
    if header is None:
        return
    if "O" in str(header.get("descr", "")):
        raise _refuse("NumPy object array", where, scan_pickle(data[int(str(header["_offset"])) :]))


def _check_zip(data: bytes, where: str) -> ArtifactFormat:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise InvalidInput(f"{where} is a damaged zip archive: {exc}") from exc
    if len(members) > MAX_ZIP_MEMBERS or sum(m.file_size for m in members) > MAX_EXPANDED:
        raise UnsafeArtifact(f"refused {where}: zip archive expands beyond the size limit", kind="zip bomb")
    names = {m.filename for m in members}
    for member in members:
        if member.is_dir():
            continue
        inner = f"{where}:{member.filename}"
        content = archive.read(member)
        if member.filename.endswith("data.pkl") or "data.pkl" in member.filename.rsplit("/", 1)[-1]:
            raise _refuse("PyTorch pickle archive", inner, scan_pickle(content))
        _check_bytes(content, inner)
    if "schema.json" in names:
        return ArtifactFormat(SKOPS, True)
    if names and all(n.endswith(".npy") for n in names):
        return ArtifactFormat("npz", False, "NumPy archive (recorded, not served)")
    return ArtifactFormat("zip", False, "zip archive (recorded, not served)")


def _check_bytes(data: bytes, where: str) -> None:
    """Refuse ``data`` if it is, or hides, anything of the pickle family."""
    if is_pickle(data):
        raise _refuse("pickle", where, scan_pickle(data))
    expanded = _decompress(data)
    if expanded is not None and is_pickle(expanded[1]):
        raise _refuse(f"{expanded[0]}-compressed pickle (joblib)", where, scan_pickle(expanded[1]))
    _check_npy(data, where)
    if data[:4] == b"PK\x03\x04":
        _check_zip(data, where)


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


def _is_onnx(data: bytes) -> bool:
    import onnx

    try:
        model = onnx.load_model_from_string(data)
        onnx.checker.check_model(model)
    except Exception:  # any parse or check failure means "not an ONNX model"
        return False
    return len(model.graph.node) > 0


def detect_format(data: bytes, filename: str) -> ArtifactFormat:
    """The real format of a model file; raises :class:`UnsafeArtifact` for the pickle family."""
    where = filename or "artifact"
    if not data:
        raise InvalidInput(f"{where} is empty")
    _check_bytes(data, where)
    if data[:4] == b"PK\x03\x04":
        return _check_zip(data, where)
    if data.startswith(b"\x93NUMPY"):
        return ArtifactFormat("npy", False, "NumPy array (recorded, not served)")
    if _is_safetensors(data):
        return ArtifactFormat(SAFETENSORS, False, "weights (recorded, not served)")
    if _is_onnx(data):
        return ArtifactFormat(ONNX, True)
    raise InvalidInput(f"{where} is not a format mlwarden can register: expected ONNX, skops or safetensors")
