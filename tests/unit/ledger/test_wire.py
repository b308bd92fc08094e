"""The ledger writer's wire format: round trips, and every malformed frame refused with WireError."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlwarden.ledger.entry import PreparedEntry
from mlwarden.ledger.wire import (
    ACKS,
    ENTRIES,
    FIELDS,
    HEADER,
    MAX_FRAME,
    Ack,
    Failure,
    WireError,
    acks_frame,
    decode_answer,
    decode_entries,
    encode_entry,
    entries_frames,
    failed_frame,
    split_frames,
)


def _entry(i: int = 0, refs: tuple[str, ...] = ("d-1",)) -> PreparedEntry:
    return PreparedEntry.build(
        kind="prediction", subject=f"model:bc:{i}", principal="token:é", body={"i": i, "x": [1.5, "ü"]}, refs=refs
    )


def _body(frame: bytes) -> bytes:
    kind, length = HEADER.unpack_from(frame, 0)
    assert kind == ENTRIES
    assert len(frame) == HEADER.size + length
    return frame[HEADER.size :]


def test_entries_round_trip_and_render_the_same_bytes() -> None:
    """What the writer decodes renders byte for byte what the worker prepared."""
    entries = [_entry(i) for i in range(5)] + [_entry(9, refs=())]
    [(frame, count)] = list(entries_frames([encode_entry(e) for e in entries]))
    assert count == 6
    decoded = decode_entries(_body(frame))
    assert [d.render(7, "t") for d in decoded] == [e.render(7, "t") for e in entries]
    assert [d.refs for d in decoded] == [e.refs for e in entries]


@given(
    st.dictionaries(st.text(max_size=8), st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20), max_size=5),
    st.text(min_size=1),
)
def test_any_prepared_entry_survives_the_wire(body: dict[str, object], subject: str) -> None:
    """Property: any entry PreparedEntry accepts crosses the wire unchanged."""
    entry = PreparedEntry.build(kind="x.y", subject=subject[:512], principal="p", body=body)
    [(frame, _)] = list(entries_frames([encode_entry(entry)]))
    assert decode_entries(_body(frame))[0].render(0, "t") == entry.render(0, "t")


def test_frames_are_split_at_the_size_limit() -> None:
    """Entries beyond one frame's limit go into the next frame, never a frame over the limit."""
    big = PreparedEntry.build(kind="k", subject="s", principal="p", body={"blob": "x" * 900_000})
    encoded = [encode_entry(big)] * 80
    frames = list(entries_frames(encoded))
    assert sum(count for _, count in frames) == 80
    assert len(frames) > 1
    assert all(len(frame) - HEADER.size <= MAX_FRAME for frame, _ in frames)


def test_split_frames_keeps_a_partial_frame_for_later() -> None:
    """A frame cut anywhere waits for its rest; complete frames come out in order."""
    whole = acks_frame([(1, b"a" * 32)]) + failed_frame(2, "disk full")
    buffer = bytearray(whole[:-3])
    first = split_frames(buffer)
    assert [kind for kind, _ in first] == [ACKS]
    buffer += whole[-3:]
    [(kind, body)] = split_frames(buffer)
    assert decode_answer(kind, body) == Failure(2, "disk full")
    assert buffer == bytearray()
    assert decode_answer(*first[0]) == [Ack(1, b"a" * 32)]


def _hostile() -> dict[str, bytes]:
    good = encode_entry(_entry())
    kind_len, subject_len, principal_len, _body_len, refs, _rows = FIELDS.unpack_from(good, 0)
    fields = good[FIELDS.size :]

    def entry(kind: bytes = b"prediction", body: bytes = b"{}", subject: bytes = b"s", refs: bytes = b"") -> bytes:
        nrefs = 1 if refs else 0
        return FIELDS.pack(len(kind), len(subject), 1, len(body), nrefs, 0) + kind + subject + b"p" + body + refs

    one = struct.pack(">I", 1)
    return {
        "empty body": b"",
        "count larger than the entries": struct.pack(">I", 2) + good,
        "trailing garbage": one + good + b"\x00",
        "cut short": one + good[:-5],
        "body length past the end": one + FIELDS.pack(kind_len, subject_len, principal_len, 1 << 19, refs, 0) + fields,
        "kind not allowed": one + entry(kind=b"Bad Kind"),
        "body not JSON": one + entry(body=b"{nope"),
        "body not an object": one + entry(body=b"[1, 2]"),
        "subject not UTF-8": one + entry(subject=b"\xff\xfe"),
        "empty subject": one + entry(subject=b""),
        "reference cut short": one + entry(refs=b"\x09ab"),
        "absurd count": struct.pack(">I", 1 << 30),
    }


@pytest.mark.parametrize("case", sorted(_hostile()))
def test_malformed_entries_frames_are_refused(case: str) -> None:
    """Each hostile variant of a good frame is a WireError, never an entry and never another exception."""
    with pytest.raises(WireError):
        decode_entries(_hostile()[case])


def test_an_oversized_frame_header_is_refused_before_reading_it() -> None:
    """A length past the limit is refused from the header alone (no 4 GB buffer)."""
    with pytest.raises(WireError, match="larger than the limit"):
        split_frames(bytearray(HEADER.pack(ENTRIES, MAX_FRAME + 1)))


def test_answers_that_do_not_add_up_are_refused() -> None:
    """An acks frame whose count disagrees with its length, or an unknown type, is a WireError."""
    frame = acks_frame([(1, b"a" * 32), (2, b"b" * 32)])
    [(kind, body)] = split_frames(bytearray(frame))
    with pytest.raises(WireError):
        decode_answer(kind, body[:-1])
    with pytest.raises(WireError):
        decode_answer(b"Z", body)


def test_attachments_round_trip_and_truncation_is_refused() -> None:
    """Sealed rows travel with their entry (a missing share stays None, bytes stay bytes); a cut row is a WireError."""
    rows = (
        ("d-1", "2026-11-26", "k" * 32, "j" * 32, None, b"\x00" * 12 + b"\xff\x00ct", b"\x01" * 30),
        ("d-é", "2026-11-26", "k" * 32, "j" * 32, b"s" * 32, b"\x02" * 40, b"\x03" * 29),
    )
    entry = _entry().with_attachments(rows)
    frame, count = next(entries_frames([encode_entry(entry), encode_entry(_entry(1))]))
    decoded = decode_entries(_body(frame))
    assert count == 2
    assert decoded[0].attachments == rows
    assert decoded[0].body_json == entry.body_json
    assert decoded[1].attachments == ()
    raw = COUNT_ONE + encode_entry(entry)
    with pytest.raises(WireError, match="attachment is cut short"):
        decode_entries(raw[:-3])


COUNT_ONE = struct.pack(">I", 1)


@pytest.mark.parametrize("rows", [256, 1000, 5000])
def test_a_prediction_of_many_rows_crosses_the_wire(rows: int) -> None:
    """One decision id and one sealed row per prediction row: counts past one byte (255) survive the wire."""
    refs = tuple(f"d-{i}" for i in range(rows))
    sealed = tuple(
        (f"d-{i}", "2026-11-26", "k" * 32, "j" * 32, b"s" * 32, b"\x02" * 40, b"\x03" * 29) for i in range(rows)
    )
    entry = _entry(refs=refs).with_attachments(sealed)
    [(frame, count)] = list(entries_frames([encode_entry(entry)]))
    [decoded] = decode_entries(_body(frame))
    assert count == 1
    assert decoded.refs == refs
    assert decoded.attachments == sealed
    assert decoded.render(3, "t") == entry.render(3, "t")
