"""Predictions rendered and sealed by the group commit, a batch at a time, instead of by each caller.

A caller hands :meth:`~mlwarden.ledger.log.Log.append_many` a :func:`pending_prediction`: its
shape checked (one input, output and subject per decision id), its values as given. The group
commit's prepare stage finishes every pending prediction of a batch in one loop
(:class:`PredictionSealer`): the body rendered around its commitments, the inputs and outputs as
canonical JSON, salted, committed to and encrypted; then the batch is written.

Why there: rendering and sealing are GIL-held work. Done by 64 caller threads, it interleaved
with the leader's writes and stretched each of them; done in the prepare stage, it runs in one
tight loop while the previous batch waits on the disk (``GroupCommit.overlap``), when the
interpreter is otherwise idle. Measured at 64 callers (bench/README.md, 2026-11-27): with the
callers rendering and the leader sealing after the commit, 0.86-0.89 of plain appends' rate;
with both in the prepare stage, 0.975 (30 interleaved rounds; ``bench/ledger.py``: 0.909).
(Salting and committing in the callers, encrypting in the leader, was worse still: 0.69-0.77.)
Randomness comes from :func:`mlwarden.randomness.random_bytes`, which does not release the GIL
per call as ``os.urandom`` does.

What is wrong with one caller's values (NaN, a type JSON cannot carry, a body past the ledger's
limit, a reserved key) refuses that caller alone: its entry's place holds the
:class:`InvalidInput` and the rest of the batch is written. What can fail for the batch as a
whole (the keys of the day cannot be read or created, the system's randomness or cipher
fails) fails every caller of the batch, and nothing of it is written.
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
    """A prediction to record, its shape checked, its values not rendered yet (see :func:`pending_prediction`)."""

    model: Mapping[str, Any]
    decision_ids: tuple[str, ...]
    inputs: Sequence[Any]
    outputs: Sequence[Any]
    subjects: tuple[str, ...] | None
    day: str | None
    """The UTC day whose keys seal it; None: the day it is sealed."""
    principal: str
    extra: Mapping[str, Any]


class _Rendered(NamedTuple):
    body: PredictionBody
    inputs: list[bytes]
    """Each row's inputs as RFC 8785 canonical JSON."""
    outputs: list[bytes]
    subjects: tuple[str, ...] | None
    day: str


def _render(item: UnsealedPrediction, today: str) -> _Rendered:
    """The body around its future commitments and the rows as canonical JSON; :class:`InvalidInput` if unfit."""
    return _Rendered(
        PredictionBody.of(item.model, item.decision_ids, principal=item.principal, extra=item.extra),
        list(map(canonical_json, item.inputs)),
        list(map(canonical_json, item.outputs)),
        item.subjects,
        item.day or today,
    )


class PredictionSealer:
    """Renders and seals the pending predictions of one group-commit batch at once (the ledger's ``EntryFinisher``).

    Each prediction's values are rendered (a failure refuses that prediction alone); then the
    keys of the day are looked up once per batch (cached ones without the database, missing
    ones in one short transaction of their own, before the ledger's), one
    :func:`~mlwarden.randomness.random_bytes` call gives the batch's shares, salts and nonces,
    and each entry's body is its pre-rendered pieces and its commitments.
    """

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def finish(self, items: Sequence[UnsealedPrediction]) -> list[PreparedEntry | Exception]:
        """One version-2 prediction entry per item, carrying its sealed rows, or the error that refuses it."""
        ring = privacy_ring(self._ws)
        today = ring.today()
        refused: dict[int, Exception] = {}
        rendered: list[_Rendered] = []
        for position, item in enumerate(items):
            try:
                rendered.append(_render(item, today))
            except Exception as exc:  # this caller's values: it alone gets the error, as in its own thread
                refused[position] = exc
        if not rendered:
            return list(refused.values())
        wanted = [(r.subjects, len(r.inputs), r.day) for r in rendered]
        # Missing keys are created under the ledger's write lock: this may run while the previous
        # batch commits (the group commit's overlap), and then waits for it in the ledger's order.
        keys = [pair for pairs in day_keys(self._ws, ring, wanted, lock=self._ws.log.write_lock) for pair in pairs]
        sealed = seal_canonical_rows(
            [d for r in rendered for d in r.body.decision_ids],
            [value for r in rendered for value in r.inputs],
            [value for r in rendered for value in r.outputs],
            keys,
            [r.subjects is None for r in rendered for _ in r.inputs],
        )
        entries: list[PreparedEntry] = []
        at = 0
        for r in rendered:
            end = at + len(r.inputs)
            entries.append(
                r.body.entry(sealed.inputs_digests[at:end], sealed.outputs_digests[at:end], sealed.rows[at:end])
            )
            at = end
        if not refused:
            return list(entries)
        made = iter(entries)
        return [refused[p] if p in refused else next(made) for p in range(len(items))]


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
    """A prediction's entry for :meth:`Log.append_many`, rendered and sealed by the group commit.

    ``model`` is the registry row (name, version, sha256); ``extra`` goes into the body beside
    the facts. The shape is checked here (:class:`InvalidInput`): one input, one output and (if
    any) one subject per decision id, and the decision ids and subjects themselves. The values
    are rendered with the batch: a value JSON cannot carry, or an entry past the ledger's
    limits, makes ``append_many`` raise :class:`InvalidInput` for this caller alone.
    ``now``: seal under the keys of that day, not today's. The caller must not change the
    values until ``append_many`` returns.
    """
    check_rows(decision_ids, inputs, outputs, subjects)
    if subjects is not None:
        check_subjects(list(subjects), len(decision_ids))
    for decision_id in decision_ids:
        check_decision_id(decision_id)
    item = UnsealedPrediction(
        model,
        tuple(decision_ids),
        inputs,
        outputs,
        None if subjects is None else tuple(subjects),
        None if now is None else utc_day(now),
        principal,
        extra,
    )
    return PendingEntry(prediction_sealer(ws), item)
