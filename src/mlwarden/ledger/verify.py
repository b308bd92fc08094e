"""Offline log verification: recompute every leaf and root, check every checkpoint.

Imports no storage: it reads rows from any iterable (the database, a bundle on disk) and
names the first index that disagrees and how (changed, missing, out of order, extra,
bad signature, rolled back).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlwarden.errors import KeyMismatch, VerificationError
from mlwarden.ledger.entry import embedded_index
from mlwarden.ledger.notes import Checkpoint, NoteVerifier
from mlwarden.ledger.ranges import Frontier, fold_frontier

Row = tuple[int, bytes, bytes | None]
"""``(index, entry bytes, stored leaf hash or None)``."""

_NO_END = 2**62

CHANGED = "changed"
MISSING = "missing"
OUT_OF_ORDER = "out of order"
EXTRA = "extra"
BAD_SIGNATURE = "bad signature"
ROLLED_BACK = "rolled back"
KEY_MISMATCH = "key mismatch"


@dataclass(frozen=True, slots=True)
class CheckpointSource:
    """A signed checkpoint note and where it came from.

    ``external`` marks notes kept outside the log's database (published files, a
    ``--checkpoint`` argument, a witness): a log shorter than one of those was rolled back.
    """

    note: str
    label: str
    external: bool = False


@dataclass(frozen=True, slots=True)
class Finding:
    """The first thing found wrong."""

    index: int | None
    problem: str
    message: str


@dataclass(slots=True)
class VerifyReport:
    """The outcome of a verification run."""

    size: int = 0
    root: bytes = b""
    checkpoints_checked: int = 0
    finding: Finding | None = None
    checked_sizes: list[int] = field(default_factory=list)
    key_name: str | None = None
    key_fingerprint: str | None = None

    def verified_with(self, verifier: NoteVerifier) -> None:
        """Note the key the checkpoints were checked with (name and fingerprint)."""
        self.key_name, self.key_fingerprint = verifier.name, verifier.fingerprint

    @property
    def ok(self) -> bool:
        """True when nothing was found wrong."""
        return self.finding is None

    def to_json(self) -> dict[str, Any]:
        """The report as JSON (``ok``, ``index``, ``problem``, ``message``...)."""
        f = self.finding
        return {
            "ok": self.ok,
            "size": self.size,
            "root": self.root.hex(),
            "checkpoints_checked": self.checkpoints_checked,
            "key": None
            if self.key_fingerprint is None
            else {"name": self.key_name, "fingerprint": self.key_fingerprint},
            "index": None if f is None else f.index,
            "problem": None if f is None else f.problem,
            "message": "ledger intact" if f is None else f.message,
        }


def _unsigned_size(note: str) -> int | None:
    lines = note.split("\n")
    return int(lines[1]) if len(lines) > 2 and lines[1].isdigit() else None


class _Stop(Exception):
    def __init__(self, finding: Finding) -> None:
        self.finding = finding


@dataclass(slots=True)
class ChunkScan:
    """What scanning the rows of ``[lo, hi)`` found; ``hi`` is None for "to the end".

    ``frontier`` holds the perfect subtree hashes of ``[lo, end)`` and ``at[s]`` those of
    ``[lo, s)`` for each requested stop ``s``. ``lo`` must be a multiple of a power of two
    at least ``hi - lo``, so that these subtrees are subtrees of the whole tree.
    """

    lo: int
    hi: int | None
    end: int
    frontier: list[bytes]
    at: dict[int, list[bytes]]
    finding: Finding | None = None


Scanner = Callable[[Sequence[int]], Iterable[ChunkScan]]
"""Given every checkpoint size, yields the scans of consecutive chunks, in order."""


def scan_chunk(rows: Iterable[Row], lo: int, hi: int | None, stops: Sequence[int]) -> ChunkScan:
    """Check each row of ``[lo, hi)`` and hash the subtrees; stop at the first finding."""
    sha = hashlib.sha256
    stack: list[bytes] = []
    wanted = sorted(s for s in stops if s > lo and (hi is None or s <= hi))
    at: dict[int, list[bytes]] = {}
    nxt = wanted.pop(0) if wanted else -1
    expected = lo
    scan = ChunkScan(lo, hi, lo, stack, at)
    for index, data, stored in rows:
        if index != expected:
            scan.finding = _continuity_finding(index, expected)
            break
        pos = data.rfind(b',"index":')
        if pos < 0 or not data.startswith(b',"index":%d,' % index, pos):
            scan.finding = _index_finding(index, data)
            break
        h = sha(b"\x00" + data).digest()
        if stored is not None and h != stored:
            scan.finding = Finding(
                index, CHANGED, f"entry {index} was changed: its text no longer hashes to its leaf hash"
            )
            break
        i = expected - lo
        while i & 1:
            h = sha(b"\x01" + stack.pop() + h).digest()
            i >>= 1
        stack.append(h)
        expected += 1
        if expected == nxt:
            at[expected] = list(stack)
            nxt = wanted.pop(0) if wanted else -1
    scan.end = expected
    return scan


def _continuity_finding(index: int, expected: int) -> Finding:
    if index < expected:
        return Finding(index, EXTRA, f"entry {index} appears twice")
    return Finding(expected, MISSING, f"entry {expected} is missing (next stored entry is {index})")


def _index_finding(index: int, data: bytes) -> Finding:
    claimed = embedded_index(data)
    if claimed is None:
        return Finding(index, CHANGED, f"entry {index} is not a ledger entry")
    if claimed == index - 1:
        return Finding(
            index - 1, EXTRA, f"an extra entry was inserted at {index - 1}: the entries after it are shifted by one"
        )
    return Finding(index, OUT_OF_ORDER, f"entry at position {index} says it is entry {claimed}")


def verify_log(
    rows: Iterable[Row],
    checkpoints: Sequence[CheckpointSource],
    verifier: NoteVerifier,
    *,
    stored_leaves: Callable[[int, int], dict[int, bytes]] | None = None,
    rows_from: Callable[[int, int], Iterable[Row]] | None = None,
    expected_size: int | None = None,
) -> VerifyReport:
    """Verify a whole log read in one pass from ``rows``; see :func:`verify_scanned`."""
    return verify_scanned(
        lambda stops: [scan_chunk(rows, 0, None, stops)],
        checkpoints,
        verifier,
        stored_leaves=stored_leaves,
        rows_from=rows_from,
        expected_size=expected_size,
    )


def verify_scanned(
    scanner: Scanner,
    checkpoints: Sequence[CheckpointSource],
    verifier: NoteVerifier,
    *,
    stored_leaves: Callable[[int, int], dict[int, bytes]] | None = None,
    rows_from: Callable[[int, int], Iterable[Row]] | None = None,
    expected_size: int | None = None,
) -> VerifyReport:
    """Verify a whole log. Never raises for tampering: the report names the first finding.

    ``scanner`` reads the rows (in one pass, or in aligned chunks by several processes).
    ``stored_leaves(lo, hi)`` and ``rows_from(lo, hi)``, when given, let the verifier
    pinpoint an entry rewritten together with its stored leaf hash.
    """
    report = VerifyReport()
    report.verified_with(verifier)
    try:
        opened = _open_all(checkpoints, verifier, report)
        _assemble(scanner, opened, report, stored_leaves, rows_from)
        _check_beyond_end(opened, report)
        if expected_size is not None and report.size > expected_size:
            raise _Stop(
                Finding(
                    expected_size,
                    EXTRA,
                    f"entries from {expected_size} on are extra: the signed head covers {expected_size}",
                )
            )
        if expected_size is not None and report.size < expected_size:
            raise _Stop(Finding(report.size, MISSING, f"entries {report.size}..{expected_size - 1} are missing"))
    except _Stop as stop:
        report.finding = stop.finding
    return report


def _open_all(
    checkpoints: Sequence[CheckpointSource], verifier: NoteVerifier, report: VerifyReport
) -> list[tuple[Checkpoint, CheckpointSource]]:
    opened: list[tuple[Checkpoint, CheckpointSource]] = []
    for source in checkpoints:
        try:
            cp = Checkpoint.open(source.note, verifier)
        except VerificationError as exc:
            problem = KEY_MISMATCH if isinstance(exc, KeyMismatch) else BAD_SIGNATURE
            raise _Stop(Finding(_unsigned_size(source.note), problem, f"{source.label}: {exc}")) from exc
        opened.append((cp, source))
    opened.sort(key=lambda pair: pair[0].size)
    by_size: dict[int, tuple[Checkpoint, CheckpointSource]] = {}
    for cp, source in opened:
        earlier = by_size.setdefault(cp.size, (cp, source))
        if earlier[0].root != cp.root:
            raise _Stop(
                Finding(
                    None,
                    CHANGED,
                    f"two signed checkpoints of size {cp.size} disagree "
                    f"({earlier[1].label} and {source.label}): the log forked",
                )
            )
    return opened


def _assemble(
    scanner: Scanner,
    opened: list[tuple[Checkpoint, CheckpointSource]],
    report: VerifyReport,
    stored_leaves: Callable[[int, int], dict[int, bytes]] | None,
    rows_from: Callable[[int, int], Iterable[Row]] | None,
) -> None:
    pending = [pair for pair in opened if pair[0].size > 0]
    top = Frontier()  # perfect subtrees of [0, lo), one "leaf" per complete chunk
    last_good = 0
    end = 0
    tail: list[bytes] = []
    scans = iter(scanner(sorted({cp.size for cp, _ in pending})))
    try:
        for scan in scans:
            if scan.lo != end:  # rows stopped inside an earlier chunk: a gap, or the real end
                following = next(iter(rows_from(end, _NO_END)), None) if rows_from is not None else None
                if following is None:
                    break
                raise _Stop(_continuity_finding(following[0], end))
            while pending and pending[0][0].size <= scan.end:
                cp, source = pending.pop(0)
                if fold_frontier(top.hashes + scan.at[cp.size]) != cp.root:
                    raise _Stop(_locate(last_good, cp.size, source, stored_leaves, rows_from))
                report.checkpoints_checked += 1
                report.checked_sizes.append(cp.size)
                last_good = cp.size
            if scan.finding is not None:
                raise _Stop(scan.finding)
            end, tail = scan.end, scan.frontier
            if scan.hi is not None and scan.end == scan.hi and len(scan.frontier) == 1:
                top.append(scan.frontier[0])
                tail = []
    finally:
        close = getattr(scans, "close", None)
        if close is not None:
            close()  # stop worker processes early when a finding ends the scan
    report.size = end
    report.root = fold_frontier(top.hashes + tail)


def _locate(
    lo: int,
    hi: int,
    source: CheckpointSource,
    stored_leaves: Callable[[int, int], dict[int, bytes]] | None,
    rows_from: Callable[[int, int], Iterable[Row]] | None,
) -> Finding:
    if stored_leaves is not None and rows_from is not None:
        leaves = stored_leaves(lo, hi)
        for index, data, _stored in rows_from(lo, hi):
            if hashlib.sha256(b"\x00" + data).digest() != leaves.get(index):
                return Finding(
                    index,
                    CHANGED,
                    f"entry {index} was changed: it disagrees with the signed checkpoint at size {hi} ({source.label})",
                )
    return Finding(
        lo,
        CHANGED,
        f"entries {lo}..{hi - 1} disagree with the signed checkpoint at size {hi} ({source.label}); "
        f"the first change is at or after {lo}",
    )


def _check_beyond_end(opened: list[tuple[Checkpoint, CheckpointSource]], report: VerifyReport) -> None:
    n = report.size
    beyond = [pair for pair in opened if pair[0].size > n]
    if not beyond:
        return
    internal_max = max((cp.size for cp, src in opened if not src.external), default=0)
    cp, source = beyond[-1]
    if source.external and internal_max <= n:
        raise _Stop(
            Finding(
                n,
                ROLLED_BACK,
                f"log has {n} entries but {source.label} covers {cp.size}: the database was rolled back or truncated",
            )
        )
    cp, source = next(pair for pair in beyond if not pair[1].external)
    raise _Stop(Finding(n, MISSING, f"entries {n}..{cp.size - 1} are missing: {source.label} covers {cp.size} entries"))
