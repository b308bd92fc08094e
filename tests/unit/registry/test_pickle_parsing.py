"""Pickles are recognised by parsing opcodes, in any archive at any depth, and NumPy object dtypes by NumPy's header."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mlwarden.errors import UnsafeArtifact
from mlwarden.registry import archives
from mlwarden.registry.pickles import is_pickle
from mlwarden.registry.sniff import detect_format
from mlwarden.samples import SampleModel


def _system(marker: Path) -> bytes:
    """A protocol 0 pickle calling os.system, as pickle.dumps writes it (starts with ``c``)."""
    return f"cos\nsystem\n(V touch {marker}\ntR.".encode()


@pytest.mark.parametrize(
    "prefix",
    [
        b"",
        b"(0",
        b"N0",
        b"I1\n0",
        b"\x88\x89" + b"\x85" * 34 + b"0",
        b"]q\x000",
    ],
)
def test_pickle_starting_with_any_opcode_stops_first_byte_evasion(marker: Path, prefix: bytes) -> None:
    """Pickles that open with MARK, NONE, INT, bools or a memo PUT (no PROTO) are refused with their import."""
    data = prefix + _system(marker)
    assert is_pickle(data)
    with pytest.raises(UnsafeArtifact) as caught:
        detect_format(data, "model.onnx")
    assert "posix.system" in caught.value.found or "os.system" in caught.value.found
    assert not marker.exists()


def test_broken_pickle_that_acts_before_breaking_is_still_a_pickle(marker: Path) -> None:
    """A stream that imports and calls, then turns to garbage without STOP, still ran code: refused."""
    data = f"cos\nsystem\n(V touch {marker}\ntR".encode() + os.urandom(64).replace(b".", b"")
    assert is_pickle(data)
    assert not marker.exists()


@pytest.mark.parametrize("data", [b"\x93NUMPY", b"0N.", b"\x08\x07\x12\x04", b"PK\x03\x04", b"hello world"])
def test_bytes_an_unpickler_would_refuse_are_not_pickles(data: bytes) -> None:
    """Stack underflows, unknown opcodes and text do not count as pickles."""
    assert not is_pickle(data)


def _zip(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def _tar(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_pickle_nested_in_archives_at_any_depth_stops_hidden_payloads(marker: Path) -> None:
    """zip in tar.gz in xz in bz2 in zip: the protocol 0 pickle at the bottom is found and named."""
    data = _system(marker)
    for wrap in (
        lambda d: _zip("weights.bin", d),
        lambda d: gzip.compress(_tar("inner/w.zip", d)),
        lzma.compress,
        bz2.compress,
        lambda d: _zip("outer.xz", d),
    ):
        data = wrap(data)
    with pytest.raises(UnsafeArtifact) as caught:
        detect_format(data, "model.zip")
    assert "posix.system" in caught.value.found or "os.system" in caught.value.found
    assert not marker.exists()


def test_one_budget_for_all_levels_stops_nested_decompression_bombs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two gzip members of 2 MiB each fit a 3 MiB budget alone but not together: refused, in real bytes."""
    monkeypatch.setattr(archives.ExpansionBudget, "__init__", _small_budget)
    zeros = gzip.compress(b"\0" * (2 << 20))
    assert detect_format(_zip("one.gz", zeros), "m.zip").name == "zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.gz", zeros)
        archive.writestr("b/inner.zip", _zip("b.gz", zeros))
    with pytest.raises(UnsafeArtifact, match="expands beyond") as caught:
        detect_format(buffer.getvalue(), "m.zip")
    assert caught.value.kind == "decompression bomb"


def _small_budget(self: archives.ExpansionBudget, left: int = 3 << 20, members: int = 100) -> None:
    self.left, self.members = left, members


def test_lying_zip_sizes_do_not_matter(monkeypatch: pytest.MonkeyPatch) -> None:
    """A member whose header declares a tiny size is still charged what it really inflates to (or refused)."""
    monkeypatch.setattr(archives.ExpansionBudget, "__init__", _small_budget)
    bomb = _zip("zeros.bin", b"\0" * (4 << 20))
    with pytest.raises(UnsafeArtifact, match="expands beyond"):
        detect_format(bomb, "m.zip")


def test_zip_quine_depth_is_bounded() -> None:
    """Archives nested deeper than the limit are refused, not followed forever."""
    data = b"not a pickle"
    for i in range(archives.MAX_DEPTH + 2):
        data = _zip(f"level{i}.zip", data)
    with pytest.raises(UnsafeArtifact, match="nested"):
        detect_format(data, "deep.zip")


@pytest.mark.parametrize(
    "dtype",
    [
        np.dtype(object),
        np.dtype([("a", "<f8"), ("b", "O")]),
        np.dtype([("a", "O", (2,))]),
        np.dtype([("outer", [("inner", "O")])]),
        np.dtype(("O", (3,))),
    ],
    ids=["object", "structured", "sub-array", "nested-structured", "subarray-of-object"],
)
def test_numpy_object_dtypes_however_spelled_stop_embedded_pickles(dtype: np.dtype, marker: Path) -> None:
    """Any dtype with object fields is refused, read through NumPy's own header parser (v1 and v2 headers)."""
    array = np.zeros(2, dtype=dtype)
    for version in ((1, 0), (2, 0)):
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array, version=version, allow_pickle=True)
        with pytest.raises(UnsafeArtifact, match="objects"):
            detect_format(buffer.getvalue(), "w.npy")
    assert not marker.exists()


def test_real_models_are_not_mistaken_for_pickles(sample: SampleModel) -> None:
    """ONNX, skops and numeric npy files still register as themselves."""
    assert not is_pickle(sample.onnx.read_bytes())
    assert not is_pickle(sample.skops.read_bytes())
    assert detect_format(sample.skops.read_bytes(), "m.skops").name == "skops"
