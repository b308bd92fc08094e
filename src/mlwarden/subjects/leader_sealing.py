"""Predictions sealed by the group commit's leader, a batch at a time, instead of by each caller.

A caller hands :meth:`~mlwarden.ledger.log.Log.append_many` a :func:`pending_prediction`: its
data checked and rendered (canonical inputs and outputs, the entry's body around its future
commitments), but not sealed. The leader of the group commit that takes it seals every pending
prediction of its batch in one loop (:class:`PredictionSealer`) before the batch's transaction.

Why: sealing is GIL-held work. Done by 64 caller threads while the leader commits, it left
fewer callers queued when the leader took its next batch: twice the commits per entry. Done by
the leader, the callers queue up while it seals, and batches stay as large as plain appends'.
Work in the callers costs more than its own CPU time under contention: with the salting,
commitments and body moved to the callers (the leader only encrypting), appends/s fell from
0.83-0.88 to 0.69-0.77 of plain appends and CPU per append rose (bench/README.md, 2026-11-27).
The leader's randomness comes from :func:`mlwarden.randomness.random_bytes`, which does not
release the GIL per call as ``os.urandom`` does (a release in the leader lets its callers run first).

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
from mlwarden.privacy.payloads import check_decision_id, seal_canonical_rows
from mlwarden.subjects.prediction_body import PredictionBody
from mlwarden.subjects.sealing import check_rows, check_subjects, day_keys, privacy_ring
from mlwarden.workspace import Workspace

_SEALER = "prediction_sealer"


class UnsealedPrediction(NamedTuple):
    """A prediction to record whose rows are not sealed yet (made by :func:`pending_prediction`, checked)."""

    body: PredictionBody
    inputs: tuple[bytes, ...]
    """Each row's inputs as RFC 8785 canonical JSON."""
    outputs: tuple[bytes, ...]
    subjects: tuple[str, ...] | None
    day: str | None
    """The UTC day whose keys seal it; None: the day it is sealed."""


class PredictionSealer:
    """Seals the pending predictions of one group-commit batch at once (the ledger's ``EntryFinisher``).

    The keys of the day are looked up once per batch (cached ones without the database, missing
    ones in one short transaction of their own, before the ledger's), one ``os.urandom`` call gives
    the batch's shares, salts and nonces, and each entry's body is its pre-rendered pieces and
    its commitments.
    """

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def finish(self, items: Sequence[UnsealedPrediction]) -> list[PreparedEntry]:
        """One version-2 prediction entry per item, carrying its sealed rows."""
        ring = privacy_ring(self._ws)
        today = ring.today()
        wanted = [(item.subjects, len(item.inputs), item.day or today) for item in items]
        keys = [pair for pairs in day_keys(self._ws, ring, wanted) for pair in pairs]
        sealed = seal_canonical_rows(
            [d for item in items for d in item.body.decision_ids],
            [value for item in items for value in item.inputs],
            [value for item in items for value in item.outputs],
            keys,
            [item.subjects is None for item in items for _ in item.inputs],
        )
        entries = []
        at = 0
        for item in items:
            end = at + len(item.inputs)
            entries.append(
                item.body.entry(sealed.inputs_digests[at:end], sealed.outputs_digests[at:end], sealed.rows[at:end])
            )
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
    item = UnsealedPrediction(
        PredictionBody.of(model, decision_ids, principal=principal, extra=extra),
        tuple(map(canonical_json, inputs)),
        tuple(map(canonical_json, outputs)),
        None if subjects is None else tuple(subjects),
        None if now is None else utc_day(now),
    )
    return PendingEntry(prediction_sealer(ws), item)
