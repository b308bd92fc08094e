"""Predictions sealed by the group commit's leader, a batch at a time, instead of by each caller.

A caller hands :meth:`~mlwarden.ledger.log.Log.append_many` a :func:`pending_prediction`: its
data checked and rendered (canonical inputs and outputs), salted, committed to (the commitments
need the salts, not the keys) and its entry complete, but its payloads not encrypted. The leader
of the group commit that takes it encrypts the rows of its whole batch in one loop
(:class:`PredictionSealer`) before the batch's transaction.

Why the split: the leader's work is the critical path that every caller waits on (it runs while
64 threads contend for the GIL, and a GIL release in it, e.g. ``os.urandom``, lets them all run
first), so it keeps only what needs the keys of the day: deriving row keys and encrypting. What
needs no key (randomness, salting, SHA-256 commitments, the body) is done by each caller before
it queues. Done entirely by the callers, sealing left fewer callers queued when the leader took
its next batch (twice the commits per entry); done entirely by the leader, it doubled the
leader's time per entry.

Everything that depends on one caller's data is refused in that caller's thread, before it is
handed over (:class:`InvalidInput`); what can still fail in the leader is shared by the batch
(the keys of the day cannot be read or created, the system's randomness or cipher fails), and
then every caller of the batch gets the error and nothing of the batch is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from mlwarden.ledger.canonical import canonical_json
from mlwarden.ledger.entry import PendingEntry, PreparedEntry
from mlwarden.privacy import utc_day
from mlwarden.privacy.payloads import SaltedRow, check_decision_id, encrypt_rows, salt_rows
from mlwarden.subjects.prediction_body import PredictionBody
from mlwarden.subjects.sealing import check_rows, check_subjects, day_keys, privacy_ring
from mlwarden.workspace import Workspace

_SEALER = "prediction_sealer"


class UnsealedPrediction(NamedTuple):
    """A prediction to record, its rows salted and committed to but not encrypted (see :func:`pending_prediction`)."""

    entry: PreparedEntry
    """The entry, complete but for its payload rows (the body holds the commitments)."""
    decision_ids: tuple[str, ...]
    rows: list[SaltedRow]
    subjects: tuple[str, ...] | None
    day: str | None
    """The UTC day whose keys seal it; None: the day it is sealed."""


class PredictionSealer:
    """Encrypts the payload rows of one group-commit batch's pending predictions at once (an ``EntryFinisher``).

    The keys of the day are looked up once per batch (cached ones without the database, missing
    ones in one short transaction of their own, before the ledger's); each row then costs its two
    encryptions (and, without subject, its two row keys).
    """

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def finish(self, items: Sequence[UnsealedPrediction]) -> list[PreparedEntry]:
        """Each item's entry carrying its sealed rows."""
        ring = privacy_ring(self._ws)
        today = ring.today()
        wanted = [(item.subjects, len(item.rows), item.day or today) for item in items]
        keys = [pair for pairs in day_keys(self._ws, ring, wanted) for pair in pairs]
        rows = encrypt_rows(
            [d for item in items for d in item.decision_ids],
            [row for item in items for row in item.rows],
            keys,
            [item.subjects is None for item in items for _ in item.rows],
        )
        entries = []
        at = 0
        for item in items:
            end = at + len(item.rows)
            entries.append(item.entry.with_attachments(rows[at:end]))
            at = end
        return entries


def prediction_sealer(ws: Workspace) -> PredictionSealer:
    """The workspace's sealer (one per workspace, so one group commit's pending predictions share one call)."""
    sealer = ws.services.get(_SEALER)
    if not isinstance(sealer, PredictionSealer):
        sealer = PredictionSealer(ws)
        ws.services[_SEALER] = sealer
    return sealer


def pending_prediction(
    ws: Workspace,
    model: Mapping[str, Any],
    decision_ids: Sequence[str],
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    subjects: Sequence[str] | None = None,
    *,
    principal: str,
    now: datetime | None = None,
    **extra: Any,
) -> PendingEntry[UnsealedPrediction]:
    """A prediction's entry for :meth:`Log.append_many`, its rows sealed by the group commit's leader.

    ``model`` is the registry row (name, version, sha256); ``extra`` goes into the body beside
    the facts. Everything wrong with this caller's data is refused here, in its own thread
    (:class:`InvalidInput`): row counts, decision ids, subjects, values JSON cannot carry, an
    entry past the ledger's limits. ``now``: seal under the keys of that day, not today's.
    """
    check_rows(decision_ids, inputs, outputs, subjects)
    if subjects is not None:
        check_subjects(list(subjects), len(decision_ids))
    for decision_id in decision_ids:
        check_decision_id(decision_id)
    body = PredictionBody.of(model, decision_ids, principal=principal, extra=extra)
    rows, inputs_digests, outputs_digests = salt_rows(list(map(canonical_json, inputs)),
                                                      list(map(canonical_json, outputs)))  # fmt: skip
    item = UnsealedPrediction(
        body.entry(inputs_digests, outputs_digests),
        tuple(decision_ids),
        rows,
        None if subjects is None else tuple(subjects),
        None if now is None else utc_day(now),
    )
    return PendingEntry(prediction_sealer(ws), item)
