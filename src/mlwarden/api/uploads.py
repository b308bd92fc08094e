"""Parsing what an upload or admin request names: file names, model cards, batch suffixes, token expiry."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from mlwarden.errors import InvalidInput, ValidationError
from mlwarden.identity.tokens import parse_duration

BATCH_SUFFIXES = (".csv", ".parquet", ".jsonl", ".ndjson")
_MAX_NAME = 255


def upload_name(filename: str | None) -> str:
    """The uploaded model's file name, as a single plain path component (``..``, ``.``, paths refused)."""
    if filename is None:
        return "model.onnx"
    if (
        not filename
        or len(filename) > _MAX_NAME
        or filename in (".", "..")
        or any(c in filename for c in "/\\")
        or any(unicodedata.category(c).startswith("C") for c in filename)
    ):
        raise ValidationError(
            f"model file name {filename[:80]!r} must be a plain file name: no path, not '.' or '..', "
            f"no control characters, at most {_MAX_NAME} characters",
            field="model",
        )
    return filename


def card_text(data: bytes) -> str:
    """The model card as text; a card that is not UTF-8 is refused, naming the byte."""
    try:
        return data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"model card is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start}", field="card"
        ) from exc


def batch_suffix(filename: str) -> str:
    """The batch format from ``?filename=``: a plain name ending in a supported suffix."""
    lowered = filename.lower()
    suffix = next((s for s in BATCH_SUFFIXES if lowered.endswith(s)), None)
    if suffix is None or filename in (".", "..") or any(c in filename for c in "/\\\x00") or len(filename) > _MAX_NAME:
        raise InvalidInput("filename must be a plain file name ending in .csv, .parquet, .jsonl or .ndjson")
    return suffix


def expiry(expires: str | None) -> datetime | None:
    """When a new token expires: ``now + duration``; malformed or past the calendar (``999999w``) is refused."""
    if expires is None:
        return None
    try:
        return datetime.now(UTC) + parse_duration(expires)
    except (InvalidInput, OverflowError, ValueError) as exc:
        detail = exc.message if isinstance(exc, InvalidInput) else "it ends past the year 9999"
        raise ValidationError(f"expires {expires[:32]!r} is not a usable duration: {detail}", field="expires") from exc
