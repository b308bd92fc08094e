"""``ledger verify``'s payload pass: every version-2 payload (predictions, feedback) opened, checked against its entry.

A payload is *verified* (it decrypts and matches its commitment), *erased* (its key was destroyed
by an erasure that a ledger entry records and that covers it), *absent* (no payload row: in a
workspace that is a deletion without erasure, so it is also reported as tampering) or *tampered*:
a ciphertext, nonce, key or commitment that fails its check, or a payload marked erased that no
erasure entry covers. Run after the log itself verified, so the entry texts read here are the
ones the signed tree holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mlwarden.data.batch_sealing import batch_claims, is_sealed_batch
from mlwarden.errors import InvalidInput, MlwardenError
from mlwarden.ledger.entry import Entry
from mlwarden.ledger.kinds import ERASURE_KIND
from mlwarden.privacy import Absent, Erased, Opened, PayloadClaim, open_many
from mlwarden.subjects.decisions import entry_claims
from mlwarden.subjects.sealing import ENTRY_VERSION, privacy_ring
from mlwarden.workspace import Workspace

BATCH = 2000
_PREDICTION = b'"kind":"prediction"'
_ERASURE = b'"kind":"' + ERASURE_KIND.encode() + b'"'
_BATCH = b'"kind":"data.batch_'
_FEEDBACK = b'"kind":"feedback"'


@dataclass(frozen=True, slots=True)
class ErasureFacts:
    """What an erasure entry says it destroyed: key ids (subject, decision) or a retention cut-off."""

    index: int
    what: str
    key_ids: frozenset[str]
    inputs_before: str | None

    def covers(self, key_id: str, field: str, entry_day: str) -> bool:
        """Whether this erasure accounts for a payload of ``field`` whose entry was written on ``entry_day``.

        Retention erases inputs of days before its cut-off; the entry may be stamped a moment after
        its payload was sealed (just past midnight), so an entry on the cut-off day itself is covered.
        """
        if self.what == "retention":
            return field == "inputs" and self.inputs_before is not None and entry_day <= self.inputs_before
        return key_id in self.key_ids


@dataclass
class PayloadReport:
    """Counts by outcome, the erasures that account for erased payloads, and every problem by ledger index."""

    verified: int = 0
    erased: int = 0
    absent: int = 0
    tampered: list[dict[str, Any]] = field(default_factory=list)
    erased_by: Counter[int] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        """No payload was tampered with (erased payloads are fine)."""
        return not self.tampered

    def to_json(self) -> dict[str, Any]:
        """``{"verified", "erased", "absent", "tampered": [{"index", "problem"}], "erased_by": {index: n}}``."""
        return {
            "verified": self.verified,
            "erased": self.erased,
            "absent": self.absent,
            "tampered": self.tampered,
            "erased_by": {str(k): v for k, v in sorted(self.erased_by.items())},
        }


def _sealed_entries(ws: Workspace) -> Iterator[Entry]:
    for _index, text, _leaf in ws.log.iter_rows():
        raw = bytes(text)
        if _PREDICTION in raw or _ERASURE in raw or _FEEDBACK in raw or _BATCH in raw:
            entry = Entry.parse(raw)
            sealed = entry.kind in ("prediction", "feedback") and entry.body.get("v") == ENTRY_VERSION
            if entry.kind == ERASURE_KIND or sealed or is_sealed_batch(entry.kind, entry.body):
                yield entry


def _erasure(entry: Entry) -> tuple[str, ErasureFacts] | None:
    body = entry.body
    erasure_id, ids = body.get("erasure_id"), body.get("key_ids")
    if not isinstance(erasure_id, str):
        return None
    key_ids = frozenset(i for i in ids if isinstance(i, str)) if isinstance(ids, list) else frozenset()
    before = body.get("inputs_before")
    return erasure_id, ErasureFacts(
        entry.index, str(body.get("what")), key_ids, before if isinstance(before, str) else None
    )


def audit_payloads(ws: Workspace) -> PayloadReport:
    """Open every sealed payload the ledger commits to; see the module's docstring for the outcomes."""
    report = PayloadReport()
    erasures: dict[str, ErasureFacts] = {}
    pending: list[tuple[int, str, PayloadClaim]] = []
    for entry in _sealed_entries(ws):
        if entry.kind == ERASURE_KIND:
            found = _erasure(entry)
            if found is not None:
                erasures[found[0]] = found[1]
            continue
        try:
            if entry.kind in ("prediction", "feedback"):
                found_claims = entry_claims(entry.kind, entry.body, entry.index)
            else:  # a batch whose personal cells are sealed (mlwarden.data.batch_sealing)
                with ws.engine.connect() as conn:
                    found_claims = batch_claims(conn, entry.body, entry.index)
            pending.extend((entry.index, entry.time[:10], c) for c in found_claims)
        except (MlwardenError, InvalidInput) as exc:
            report.tampered.append({"index": entry.index, "problem": exc.message})
    ring = privacy_ring(ws)
    with ws.engine.connect() as conn:
        for start in range(0, len(pending), BATCH):
            batch = pending[start : start + BATCH]
            results = open_many(conn, ring, [c for _, _, c in batch])
            for (index, day, claim), result in zip(batch, results, strict=True):
                _judge(report, erasures, index, day, claim, result)
    return report


def _judge(
    report: PayloadReport,
    erasures: dict[str, ErasureFacts],
    index: int,
    day: str,
    claim: PayloadClaim,
    result: Any,
) -> None:
    where = f"{claim.field} of decision {claim.decision_id}"
    if isinstance(result, Opened):
        report.verified += 1
    elif isinstance(result, Erased):
        facts = erasures.get(result.erasure_id)
        if facts is None or not facts.covers(result.key_id, claim.field, day):
            problem = f"{where} is marked erased, but no erasure entry covers its key {result.key_id}"
            report.tampered.append({"index": index, "problem": problem})
        else:
            report.erased += 1
            report.erased_by[facts.index] += 1
    elif isinstance(result, Absent):
        report.absent += 1
        report.tampered.append({"index": index, "problem": f"{where}: payload row missing, and no erasure recorded"})
    else:
        report.tampered.append({"index": index, "problem": result.reason})
