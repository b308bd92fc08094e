"""Open archives and compressed streams under one budget of real decompressed bytes, at any depth.

Zip and tar members, gzip, bzip2, xz/lzma and zlib streams (joblib's ``ZF`` container too)
are expanded in chunks and every byte that comes out is charged to one
:class:`ExpansionBudget` shared by all nesting levels, so a bomb is refused by what it
really produces, never by the sizes it declares. Nothing here decides what is unsafe;
:mod:`mlwarden.registry.sniff` looks at what comes out.
"""

from __future__ import annotations

import bz2
import io
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Protocol

from mlwarden.errors import InvalidInput, UnsafeArtifact

BUDGET = 1 << 30
"""Decompressed bytes examined for one artifact, all nesting levels together."""
MAX_MEMBERS = 100_000
"""Archive members examined for one artifact, all nesting levels together."""
MAX_DEPTH = 16
"""Archives and streams nested deeper than this are refused (a zip quine never ends)."""
_CHUNK = 1 << 20
_STREAM_ERRORS = (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error)


@dataclass(slots=True)
class ExpansionBudget:
    """What is left to examine of one artifact: bytes out of every decompression, and members."""

    left: int = BUDGET
    members: int = MAX_MEMBERS

    def spend(self, count: int, where: str) -> None:
        """Charge ``count`` real bytes; refuse the artifact once the budget is gone."""
        self.left -= count
        if self.left < 0:
            raise UnsafeArtifact(
                f"refused {where}: it expands beyond {BUDGET} bytes (all archive levels together)",
                kind="decompression bomb",
            )

    def member(self, where: str) -> None:
        """Charge one archive member."""
        self.members -= 1
        if self.members < 0:
            raise UnsafeArtifact(f"refused {where}: more than {MAX_MEMBERS} archive members", kind="decompression bomb")


def check_depth(depth: int, where: str) -> None:
    """Refuse nesting beyond :data:`MAX_DEPTH`."""
    if depth > MAX_DEPTH:
        raise UnsafeArtifact(f"refused {where}: archives nested more than {MAX_DEPTH} deep", kind="decompression bomb")


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    @property
    def needs_input(self) -> bool: ...
    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


def _zlib_stream(data: bytes, wbits: int, out: bytearray, budget: ExpansionBudget, where: str) -> bytes:
    """Inflate one zlib/gzip member into ``out``; return the bytes after it."""
    inflater = zlib.decompressobj(wbits)
    pending = data
    while pending and not inflater.eof:
        piece = inflater.decompress(pending, _CHUNK)
        budget.spend(len(piece), where)
        out += piece
        pending = inflater.unconsumed_tail
    return inflater.unused_data


def _other_stream(make: Callable[[], _Decompressor], data: bytes, out: bytearray, budget: ExpansionBudget,
                  where: str) -> bytes:  # fmt: skip
    """Decompress one bzip2 or xz/lzma stream into ``out``; return the bytes after it."""
    decompressor = make()
    piece = decompressor.decompress(data, _CHUNK)
    while True:
        budget.spend(len(piece), where)
        out += piece
        if decompressor.eof or decompressor.needs_input:
            return decompressor.unused_data if decompressor.eof else b""
        piece = decompressor.decompress(b"", _CHUNK)


def _kind(data: bytes) -> str | None:
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    if data[:3] == b"BZh":
        return "bz2"
    if data[:6] == b"\xfd7zXZ\x00" or data[:3] == b"\x5d\x00\x00":
        return "lzma"
    if data[:2] == b"ZF" and b"x" in data[:32]:  # joblib's zlib container: "ZF0x" + length + zlib stream
        return "zlib"
    if len(data) > 2 and data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0:
        return "zlib"
    return None


def expand_stream(data: bytes, where: str, budget: ExpansionBudget) -> tuple[str, bytes] | None:
    """``(kind, bytes)`` of a compressed stream (every concatenated member), None if not compressed.

    A stream that breaks part-way still yields what came out before the break: a streaming
    reader (joblib) would have acted on it.
    """
    kind = _kind(data)
    if kind is None:
        return None
    out = bytearray()
    rest = data[data.index(b"x") :] if data[:2] == b"ZF" else data
    try:
        while rest:
            if kind == "gzip":
                rest = _zlib_stream(rest, 31, out, budget, where)
            elif kind == "zlib":
                rest = _zlib_stream(rest, 15, out, budget, where)
            elif kind == "bz2":
                rest = _other_stream(bz2.BZ2Decompressor, rest, out, budget, where)
            else:
                rest = _other_stream(lzma.LZMADecompressor, rest, out, budget, where)
            if kind == "zlib" or _kind(rest) != kind:
                break  # concatenated streams of the same kind are read on, as the decompressors do
    except _STREAM_ERRORS:
        pass  # examine what came out before the damage
    return (kind, bytes(out)) if out else None


def is_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def is_tar(data: bytes) -> bool:
    return len(data) > 262 and data[257:262] == b"ustar"


def _read(stream: IO[bytes], budget: ExpansionBudget, where: str) -> bytes:
    out = bytearray()
    while piece := stream.read(_CHUNK):
        budget.spend(len(piece), where)
        out += piece
    return bytes(out)


def zip_names(data: bytes, where: str) -> list[str]:
    """Every member name of a zip archive (nothing is decompressed)."""
    try:
        return [m.filename for m in zipfile.ZipFile(io.BytesIO(data)).infolist()]
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise InvalidInput(f"{where} is a damaged zip archive: {exc}") from exc


def zip_members(data: bytes, where: str, budget: ExpansionBudget) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of every file in a zip archive, one at a time, charged to ``budget``."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        for member in archive.infolist():
            if member.is_dir():
                continue
            inner = f"{where}:{member.filename}"
            budget.member(inner)
            with archive.open(member) as stream:
                content = _read(stream, budget, inner)
            yield member.filename, content
    except (zipfile.BadZipFile, ValueError, EOFError, NotImplementedError, RuntimeError, *_STREAM_ERRORS) as exc:
        raise InvalidInput(f"{where} is a damaged or unreadable zip archive: {str(exc)[:200]}") from exc


def tar_members(data: bytes, where: str, budget: ExpansionBudget) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of every regular file in an (uncompressed) tar archive, charged to ``budget``."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for member in archive:
                inner = f"{where}:{member.name}"
                budget.member(inner)
                stream = archive.extractfile(member) if member.isfile() else None
                if stream is not None:
                    yield member.name, _read(stream, budget, inner)
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise InvalidInput(f"{where} is a damaged tar archive: {str(exc)[:200]}") from exc
