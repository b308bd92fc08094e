"""The ledger writer's wire format: entries from gateway workers, receipts back, in batched frames.

Every frame is a type byte and a 4-byte big-endian body length, then the body:

* ``E`` (worker → writer): a count, then that many prepared entries, each
  ``kind, subject, principal, body, refs`` as length-prefixed UTF-8 (the body is the
  entry's canonical JSON object, rendered by the worker), then its attachments (one sealed
  row per decision, written in the entry's transaction): the lengths of its 7 fields in one
  fixed header (``>HBBBHII``: decision id, day, inputs key, outputs key, share (``0xFFFF``:
  absent), inputs, outputs), then their bytes;
* ``A`` (writer → worker): a count, then that many receipts ``(index u64, leaf hash 32 bytes)``;
* ``F`` (writer → worker): a count and a message: the next ``count`` entries were not recorded.

A connection is a FIFO: the writer answers a worker's entries in the order it sent them,
so receipts carry no request ids. Parsing is strict and bounded: anything malformed is a
:class:`WireError` and the writer drops that connection. Fields are checked as
:meth:`PreparedEntry.build` checks them; the body's JSON is not parsed again (the peer is
a process of the workspace's own uid, checked by the writer, which rendered it canonically):
it must only be one object's bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mlwarden.errors import InvalidInput, MlwardenError
from mlwarden.ledger.entry import MAX_BODY_BYTES, MAX_PRINCIPAL, MAX_SUBJECT, PayloadRow, PreparedEntry

ENTRIES = b"E"
ACKS = b"A"
FAILED = b"F"
HEADER = struct.Struct(">cI")
COUNT = struct.Struct(">I")
FIELDS = struct.Struct(">BHHIII")
"""An entry's field lengths: kind, subject, principal, body; then its reference and attachment counts."""
LENGTH = struct.Struct(">I")
ROW = struct.Struct(">HBBBHII")
"""A sealed row's field lengths: decision id, day, inputs key, outputs key (text), share, inputs, outputs."""
ABSENT = 0xFFFF
"""The share length of a row that has none (a subject's row)."""
MAX_ATTACHMENTS = 1 << 17
"""More than the most rows a request may carry (a prediction attaches one row per decision)."""
MAX_REFS = 1 << 17
RECEIPT = struct.Struct(">Q32s")
MAX_FRAME = 64 << 20
"""The largest frame either side accepts (a worker splits bigger batches)."""
MAX_ENTRIES = 1 << 16
MAX_MESSAGE = 2000


class WireError(MlwardenError):
    """A frame that is not in the ledger writer's format."""


@dataclass(frozen=True, slots=True)
class Ack:
    """One entry's receipt as the writer sent it: its index and leaf hash."""

    index: int
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class Failure:
    """The writer could not record the next ``count`` entries."""

    count: int
    message: str


def encode_entry(entry: PreparedEntry) -> bytes:
    """One entry's bytes inside an ``E`` frame (the worker encodes each once, when it queues it)."""
    kind, subject, principal = entry.kind.encode(), entry.subject.encode(), entry.principal.encode()
    refs = b"".join(bytes((len(r),)) + r for r in (ref.encode() for ref in entry.refs))
    fields = FIELDS.pack(
        len(kind), len(subject), len(principal), len(entry.body_json), len(entry.refs), len(entry.attachments)
    )
    rows = b"".join(_encode_row(row) for row in entry.attachments)
    return fields + kind + subject + principal + entry.body_json + refs + rows


def _encode_row(row: PayloadRow) -> bytes:
    decision_id, day, inputs_key, outputs_key, share, inputs, outputs = row
    texts = decision_id.encode(), day.encode(), inputs_key.encode(), outputs_key.encode()
    lengths = ROW.pack(*map(len, texts), ABSENT if share is None else len(share), len(inputs), len(outputs))
    return b"".join((lengths, *texts, share or b"", inputs, outputs))


def _decode_row(raw: bytes, at: int) -> tuple[PayloadRow, int]:
    if at + ROW.size > len(raw):
        raise WireError("entry attachment is cut short")
    lengths = ROW.unpack_from(raw, at)
    at += ROW.size
    size = sum(lengths) - (ABSENT if lengths[4] == ABSENT else 0)
    if at + size > len(raw):
        raise WireError("entry attachment is cut short")
    values: list[bytes | None] = []
    for length in lengths:
        if length == ABSENT and len(values) == 4:
            values.append(None)
            continue
        values.append(raw[at : at + length])
        at += length
    decision_id, day, inputs_key, outputs_key, share, inputs, outputs = values
    if not decision_id or not day or not inputs_key or not outputs_key:
        raise WireError("entry attachment lacks a decision id, day or key id")
    if not inputs or not outputs:
        raise WireError("entry attachment lacks its inputs or outputs")
    texts = (bytes(decision_id).decode(), bytes(day).decode(), bytes(inputs_key).decode(), bytes(outputs_key).decode())
    return (*texts, share, bytes(inputs), bytes(outputs)), at


def entries_frames(encoded: Sequence[bytes]) -> Iterator[tuple[bytes, int]]:
    """``E`` frames holding ``encoded`` entries in order, each under :data:`MAX_FRAME`; with their counts."""
    start = 0
    while start < len(encoded):
        size, stop = COUNT.size, start
        while (
            stop < len(encoded)
            and stop - start < MAX_ENTRIES
            and (stop == start or size + len(encoded[stop]) <= MAX_FRAME)
        ):
            size += len(encoded[stop])
            stop += 1
        body = COUNT.pack(stop - start) + b"".join(encoded[start:stop])
        yield HEADER.pack(ENTRIES, len(body)) + body, stop - start
        start = stop


def acks_frame(acks: Sequence[tuple[int, bytes]]) -> bytes:
    """An ``A`` frame with one ``(index, leaf hash)`` per entry, in the order they were sent."""
    body = COUNT.pack(len(acks)) + b"".join(RECEIPT.pack(index, leaf) for index, leaf in acks)
    return HEADER.pack(ACKS, len(body)) + body


def failed_frame(count: int, message: str) -> bytes:
    """An ``F`` frame: the next ``count`` entries were not recorded, and why."""
    text = message.encode()[:MAX_MESSAGE]
    body = COUNT.pack(count) + text
    return HEADER.pack(FAILED, len(body)) + body


def split_frames(buffer: bytearray) -> list[tuple[bytes, bytes]]:
    """Take every complete frame off the front of ``buffer``: ``(type, body)``; a partial frame stays."""
    frames: list[tuple[bytes, bytes]] = []
    offset = 0
    while len(buffer) - offset >= HEADER.size:
        kind, length = HEADER.unpack_from(buffer, offset)
        if length > MAX_FRAME:
            raise WireError(f"frame of {length} bytes is larger than the limit of {MAX_FRAME}")
        end = offset + HEADER.size + length
        if end > len(buffer):
            break
        frames.append((kind, bytes(buffer[offset + HEADER.size : end])))
        offset = end
    if offset:
        del buffer[:offset]
    return frames


def decode_entries(raw: bytes) -> list[PreparedEntry]:
    """The entries of an ``E`` frame body, each checked as :meth:`PreparedEntry.build` would."""
    if len(raw) < COUNT.size:
        raise WireError("entries frame is too short for its count")
    (count,) = COUNT.unpack_from(raw, 0)
    if count > MAX_ENTRIES:
        raise WireError(f"entries frame holds {count} entries; the limit is {MAX_ENTRIES}")
    at = COUNT.size
    out: list[PreparedEntry] = []
    for _ in range(count):
        entry, at = _decode_entry(raw, at)
        out.append(entry)
    if at != len(raw):
        raise WireError(f"entries frame has {len(raw) - at} bytes after its last entry")
    return out


def _decode_entry(raw: bytes, at: int) -> tuple[PreparedEntry, int]:
    if at + FIELDS.size > len(raw):
        raise WireError("entry is cut short")
    lengths = FIELDS.unpack_from(raw, at)
    at += FIELDS.size
    kind_len, subject_len, principal_len, body_len, ref_count, attachment_count = lengths
    if attachment_count > MAX_ATTACHMENTS:
        raise WireError(f"entry has {attachment_count} attachments; the limit is {MAX_ATTACHMENTS}")
    if ref_count > MAX_REFS:
        raise WireError(f"entry has {ref_count} references; the limit is {MAX_REFS}")
    if subject_len > 4 * MAX_SUBJECT or principal_len > 4 * MAX_PRINCIPAL or body_len > MAX_BODY_BYTES:
        raise WireError("entry field is longer than the ledger allows")
    end = at + kind_len + subject_len + principal_len + body_len
    if end > len(raw):
        raise WireError("entry is cut short")
    try:
        kind = raw[at : at + kind_len].decode()
        at += kind_len
        subject = raw[at : at + subject_len].decode()
        at += subject_len
        principal = raw[at : at + principal_len].decode()
        at += principal_len
        body_json = raw[at:end]
        refs: list[str] = []
        at = end
        for _ in range(ref_count):
            if at >= len(raw) or at + 1 + raw[at] > len(raw):
                raise WireError("entry reference is cut short")
            refs.append(raw[at + 1 : at + 1 + raw[at]].decode())
            at += 1 + raw[at]
        if body_json[:1] != b"{" or body_json[-1:] != b"}":
            raise WireError("entry body is not a JSON object")
        rows: list[PayloadRow] = []
        for _ in range(attachment_count):
            row, at = _decode_row(raw, at)
            rows.append(row)
        entry = PreparedEntry.from_canonical(kind=kind, subject=subject, principal=principal, body_json=body_json,
                                             refs=tuple(refs))  # fmt: skip
        return (entry.with_attachments(rows) if rows else entry), at
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WireError(f"entry is not valid: {exc}") from exc
    except InvalidInput as exc:
        raise WireError(f"entry is not valid: {exc.message}") from exc


def decode_answer(kind: bytes, body: bytes) -> list[Ack] | Failure:
    """An ``A`` or ``F`` frame from the writer."""
    if len(body) < COUNT.size:
        raise WireError("answer frame is too short for its count")
    (count,) = COUNT.unpack_from(body, 0)
    if kind == FAILED:
        return Failure(count, body[COUNT.size :].decode(errors="replace"))
    if kind != ACKS or len(body) != COUNT.size + count * RECEIPT.size:
        raise WireError(f"unexpected answer frame {kind!r} of {len(body)} bytes")
    return [Ack(index, leaf) for index, leaf in RECEIPT.iter_unpack(memoryview(body)[COUNT.size :])]
