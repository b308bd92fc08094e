"""What the outbox delivers comes from the ledger: the ``alert.raised`` entry, proven against the signed head.

The outbox table is not trusted (DESIGN.md, trust boundaries): whoever can write the
database could insert a row for an alert nobody raised, or change one to point at another
alert. So a row holds only what to look up (alert id, where its entry is), and the alert
that is sent is read from a ledger entry whose inclusion in the Ed25519-signed head is
verified, whose kind is ``alert.raised`` and whose body names the row's alert id. A row
that fails any of these is refused, never delivered.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from mlwarden.errors import InvalidInput, LedgerUnavailable, NotFound, TamperedRow
from mlwarden.ledger.entry import Entry
from mlwarden.ledger.log import Log
from mlwarden.monitor.alert import ALERT_RAISED, Alert
from mlwarden.store.engine import describe_db_error
from mlwarden.store.schema import ledger_entries

SEARCH_LIMIT = 10_000
"""How many ``alert.raised`` entries after the evidence a row without an entry index may be searched in."""


class AlertSource(Protocol):
    """Gives the alert an outbox row stands for, or raises :class:`TamperedRow`."""

    def verified(self, alert_id: str, entry_index: int | None, after_index: int) -> Alert:
        """The alert ``alert_id`` as its proven ledger entry records it."""
        ...


def alert_from_entry(entry: Entry) -> Alert:
    """The alert an ``alert.raised`` entry records (its index becomes ``entry_index``)."""
    if entry.kind != ALERT_RAISED:
        raise TamperedRow(f"ledger entry {entry.index} is {entry.kind!r}, not {ALERT_RAISED!r}")
    try:
        return Alert.from_dict({**entry.body, "entry_index": entry.index})
    except (KeyError, ValueError, TypeError) as exc:
        raise TamperedRow(f"ledger entry {entry.index} is not an alert: {exc!r}") from exc


class LedgerAlerts:
    """Alerts read from the workspace's ledger and proven against its signed head."""

    def __init__(self, log: Log, engine: Engine) -> None:
        self._log = log
        self._engine = engine

    def verified(self, alert_id: str, entry_index: int | None, after_index: int) -> Alert:
        """The proven alert ``alert_id``; raise :class:`TamperedRow` when the ledger does not back the row."""
        index = entry_index if entry_index is not None else self._locate(alert_id, after_index)
        try:
            entry, _proof = self._log.verified_entry(index)
        except NotFound as exc:
            raise TamperedRow(f"outbox row for {alert_id} points at a missing ledger entry {index}") from exc
        alert = alert_from_entry(entry)
        if alert.alert_id != alert_id:
            raise TamperedRow(f"outbox row for {alert_id} points at entry {index}, which records {alert.alert_id}")
        return alert

    def _locate(self, alert_id: str, after_index: int) -> int:
        """The index of the (unproven) entry that records ``alert_id``, searched after its evidence."""
        query = (
            select(ledger_entries.c.idx, ledger_entries.c.entry)
            .where(ledger_entries.c.kind == ALERT_RAISED, ledger_entries.c.idx > after_index)
            .order_by(ledger_entries.c.idx)
            .limit(SEARCH_LIMIT)
        )
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(query).all()
        except SQLAlchemyError as exc:
            raise LedgerUnavailable(f"ledger could not be read: {describe_db_error(exc)}") from exc
        for index, text in rows:
            try:
                body = Entry.parse(text).body
            except InvalidInput:
                continue  # proven (or refused) when it is the one
            if body.get("alert_id") == alert_id:
                return int(index)
        raise TamperedRow(f"no {ALERT_RAISED} entry records {alert_id} after entry {after_index}")
