"""Name every stored row that disagrees with the verified ledger or its signature.

``ledger verify`` runs all of it, ``model check`` the model part. Each finding names the
table, the row and what is wrong, so an operator knows exactly what a database writer
changed. Enforcement never depends on these checks (the gateway and the workflows
refuse on use); they are the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, select

from mlwarden.errors import ArtifactIntegrityError, InvalidInput
from mlwarden.identity.tokens import token_row_problem
from mlwarden.ledger.canonical import canonical_json
from mlwarden.ledger.columns import DECISION_KIND, STATUS_KIND, derived
from mlwarden.ledger.entry import Entry
from mlwarden.ledger.kinds import recorded_refs
from mlwarden.registry.dataset_versions import check_dataset_row
from mlwarden.registry.models import check_row
from mlwarden.store.schema import (
    approvals,
    attachments,
    batches,
    dataset_versions,
    ledger_entries,
    ledger_refs,
    model_aliases,
    model_versions,
    privacy_rows,
)
from mlwarden.store.schema import tokens as tokens_table
from mlwarden.trust.projection import TrustedState
from mlwarden.workspace import Workspace

_TIME_MARK = b',"time":'
_INDEX_MARK = b',"index":'


@dataclass(frozen=True, slots=True)
class RowFinding:
    """One stored row that cannot be trusted."""

    table: str
    row: str
    problem: str
    extra: tuple[tuple[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "row": self.row, "problem": self.problem, **dict(self.extra)}

    def line(self) -> str:
        return f"{self.table} row {self.row}: {self.problem}"


def model_rows(ws: Workspace, state: TrustedState) -> list[RowFinding]:
    """Model versions (signature, stage) and approvals against the ledger."""
    found: list[RowFinding] = []
    with ws.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(model_versions)).mappings()]
        approval_rows = conn.execute(select(approvals.c.name, approvals.c.version, approvals.c.principal)).all()
        attachment_rows = conn.execute(select(attachments.c.name, attachments.c.version, attachments.c.sha256)).all()
        alias_rows = conn.execute(select(model_aliases.c.name, model_aliases.c.alias, model_aliases.c.version)).all()
    for row in rows:
        key = f"model:{row['name']}:{row['version']}"
        ref = f"{row['name']}:{row['version']}"
        facts = state.version(row["name"], int(row["version"]))
        try:
            check_row(ws, row)
        except ArtifactIntegrityError as exc:
            found.append(RowFinding("model_versions", key, exc.message, (("model", ref),)))
            continue
        if facts is None or facts.sha256 != row["sha256"] or facts.registrant != row["registrant"]:
            found.append(RowFinding("model_versions", key, "no matching model.registered entry", (("model", ref),)))
            continue
        if row["stage"] != facts.stage:
            extra = (("model", ref), ("stage", row["stage"]), ("ledger_says", facts.stage),
                     ("ledger_index", facts.stage_index), ("sha256", row["sha256"]))  # fmt: skip
            problem = f"stage is {row['stage']} but the ledger says {facts.stage}"
            found.append(RowFinding("model_versions", key, problem, extra))
    for name, version, sha in attachment_rows:
        facts = state.version(str(name), int(version))
        if facts is None or sha not in facts.reports:
            found.append(RowFinding("attachments", f"model:{name}:{version}:{sha}", "no model.report_attached entry"))
    for name, alias, version in alias_rows:
        facts_of_model = state.models.get(str(name))
        if facts_of_model is None or facts_of_model.aliases.get(str(alias)) != int(version):
            found.append(RowFinding("model_aliases", f"{name}@{alias}", f"points at v{version}; the ledger disagrees"))
    for name, version, principal in approval_rows:
        facts = state.version(str(name), int(version))
        if facts is None or principal not in facts.approvals:
            found.append(
                RowFinding("approvals", f"model:{name}:{version}:{principal}", "no model.approved entry backs it")
            )
    return found


def token_rows(ws: Workspace, state: TrustedState) -> list[RowFinding]:
    """Tokens against their ``token.created`` / ``token.revoked`` entries."""
    with ws.engine.connect() as conn:
        rows = conn.execute(select(tokens_table)).all()
    return [
        RowFinding("tokens", str(row.id), problem)
        for row in rows
        if (problem := token_row_problem(row, state.tokens.get(row.id))) is not None
    ]


def dataset_rows(ws: Workspace) -> list[RowFinding]:
    """Dataset versions against their signatures (contract, label, source and hashes included)."""
    with ws.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(dataset_versions)).mappings()]
    found = []
    for row in rows:
        try:
            check_dataset_row(ws, row)
        except ArtifactIntegrityError as exc:
            found.append(RowFinding("dataset_versions", f"dataset:{row['name']}:{row['version']}", exc.message))
    return found


def batch_rows(ws: Workspace, state: TrustedState) -> list[RowFinding]:
    """Quarantined and released batches against their entries."""
    with ws.engine.connect() as conn:
        rows = conn.execute(select(batches.c.id, batches.c.status, batches.c.ingested_by, batches.c.released_by)).all()
    found = []
    for batch_id, status, ingested_by, released_by in rows:
        facts = state.batches.get(str(batch_id))
        if facts is None:
            if status != "accepted":
                found.append(RowFinding("batches", str(batch_id), f"status {status} but no quarantine entry"))
            continue
        expected = "released" if facts.released_by is not None else "quarantined"
        if (status, ingested_by, released_by) != (expected, facts.ingested_by, facts.released_by):
            found.append(RowFinding("batches", str(batch_id), f"row says {status}; the ledger says {expected}"))
    return found


def ledger_columns(ws: Workspace) -> list[RowFinding]:
    """The columns lookups select on: each entry's kind, subject, principal, time, decision and status,
    each reference's index, and each sealed prediction row's index."""
    found: list[RowFinding] = []
    e = ledger_entries.c
    with ws.engine.connect() as conn:
        query = select(e.idx, e.kind, e.subject, e.entry, e.principal, e.entry_time, e.decision, e.status)
        for idx, kind, subject, text, principal, time, decision, status in conn.execute(query.order_by(e.idx)):
            raw = str(text).encode()
            problem = _column_problem(str(kind), str(subject), raw) or _lookup_problem(
                raw, principal, time, (decision, status)
            )
            if problem:
                found.append(RowFinding("ledger_entries", str(idx), problem))
        for table, ref, index in ((ledger_refs, ledger_refs.c.ref, ledger_refs.c.idx),
                                  (privacy_rows, privacy_rows.c.decision_id, privacy_rows.c.ledger_index)):  # fmt: skip
            found.extend(_index_findings(conn, table, ref, index))
    return found


def _index_findings(
    conn: Connection, table: Table, ref: ColumnElement[Any], index: ColumnElement[Any]
) -> Iterator[RowFinding]:
    """Each row of a reference index (``ledger_refs``, or a sealed prediction row's ``ledger_index``, the only
    index of its decision id) must point at an entry whose text records that reference."""
    rows = select(ref, index, ledger_entries.c.entry).join_from(
        table, ledger_entries, ledger_entries.c.idx == index, isouter=True
    )
    recorded: tuple[int | None, tuple[str, ...]] = (None, ())
    for key, idx, text in conn.execute(rows.order_by(index)):
        if idx is None:
            yield RowFinding(table.name, str(key), "has no ledger index: what it indexes cannot be looked up")
            continue
        if recorded[0] != idx:
            recorded = (idx, _entry_refs(text))
        if str(key) not in recorded[1]:
            yield RowFinding(table.name, str(key), f"points at entry {idx}, which does not record it")


def _entry_refs(text: str | None) -> tuple[str, ...]:
    """The references an entry text records (none when it is missing or not an entry)."""
    if text is None:
        return ()
    try:
        entry = Entry.parse(text)
    except InvalidInput:
        return ()
    return recorded_refs(entry.kind, entry.body)


def _column_problem(kind: str, subject: str, text: bytes) -> str | None:
    """Compare the index columns with the entry text (canonical JSON: fixed key order)."""
    at = text.rfind(_INDEX_MARK)
    end = text.rfind(_TIME_MARK)
    if at < 0 or end < 0:
        return "entry text is not a canonical entry"
    tail = text[at:end]
    if b',"kind":' + canonical_json(kind) + b',"principal":' not in tail:
        return f"kind column {kind!r} differs from the entry"
    if not tail.endswith(b',"subject":' + canonical_json(subject)):
        return f"subject column {subject!r} differs from the entry"
    return None


def _lookup_problem(text: bytes, principal: Any, time: Any, columns: tuple[Any, Any]) -> str | None:
    """Compare the audit lookup columns (principal, time, decision, status) with the entry text."""
    at = text.rfind(_TIME_MARK)
    tail = text[text.rfind(_INDEX_MARK) : at]  # the top-level fields: body strings escape every quote
    if not isinstance(principal, str) or b',"principal":' + canonical_json(principal) + b',"subject":' not in tail:
        return f"principal column {principal!r} differs from the entry"
    if not isinstance(time, str) or text[at:] != _TIME_MARK + canonical_json(time) + b"}":
        return f"time column {time!r} differs from the entry"
    carriers = (b',"kind":' + canonical_json(kind) + b',"principal":' for kind in (DECISION_KIND, STATUS_KIND))
    if columns == (None, None) and not any(mark in tail for mark in carriers):
        return None  # no other kind carries a decision or a status: no body to read
    try:
        entry = Entry.parse(text)
    except InvalidInput:
        return "entry text is not a canonical entry"
    expected = derived(entry.kind, entry.body)
    if (columns[0], None if columns[1] is None else int(columns[1])) != expected:
        return f"decision/status columns {columns!r} differ from the entry {expected!r}"
    return None


def audit_all(ws: Workspace, state: TrustedState) -> list[RowFinding]:
    """Every check above, in a stable order."""
    return [
        *ledger_columns(ws),
        *token_rows(ws, state),
        *model_rows(ws, state),
        *dataset_rows(ws),
        *batch_rows(ws, state),
    ]


def describe(findings: list[RowFinding]) -> str:
    """A short summary line."""
    if not findings:
        return "every enforced row matches the ledger"
    return f"{len(findings)} row(s) disagree with the ledger: " + "; ".join(f.line() for f in findings[:5])
