"""Unambiguous byte strings for associated data: a label, then each part length-prefixed.

``framed(label, *parts) = label || 0x00 || for each part: uint32-be(len(utf8)) || utf8``
No two different part lists frame to the same bytes, whatever the parts contain.
"""

from __future__ import annotations


def frame_part(part: str) -> bytes:
    """One part as ``framed`` writes it: a 4-byte big-endian length, then its UTF-8 bytes."""
    data = part.encode("utf-8")
    return len(data).to_bytes(4, "big") + data


def framed(label: bytes, *parts: str) -> bytes:
    """``label``, a zero byte, then each part as a 4-byte big-endian length and its UTF-8 bytes."""
    return b"".join([label, b"\x00", *map(frame_part, parts)])
