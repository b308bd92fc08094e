"""Subject access: every decision, feedback value and ingested batch row about a data subject, opened, with proofs.

The file (format ``mlwarden-subject-export-v1``) verifies offline with
:func:`mlwarden.subjects.export_check.check_export`: each entry's text hashes to a leaf that the
inclusion proof places under the signed checkpoint's root, and each payload (value + salt)
matches the commitment the entry holds; a batch row's commitment is placed under the batch
entry's ``commitments_root`` by its own audit path (``row_proof``). Exporting is recorded
(``privacy.exported``: counts and the file's SHA-256, never the subject).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from mlwarden.data.batch_rows import batch_ref
from mlwarden.data.batch_sealing import batch_claims
from mlwarden.errors import IntegrityError
from mlwarden.ledger import merkle
from mlwarden.ledger.kinds import EXPORT_KIND
from mlwarden.ledger.notes import Checkpoint
from mlwarden.privacy import Opened, Scope, open_many
from mlwarden.privacy.commitments import commitment_leaf
from mlwarden.store.schema import privacy_keys, privacy_payloads, privacy_rows
from mlwarden.subjects.decisions import entry_claims
from mlwarden.subjects.sealing import privacy_ring
from mlwarden.workspace import Workspace

FORMAT = "mlwarden-subject-export-v1"


def _subject_rows(ws: Workspace, subject: str) -> dict[int, set[str]]:
    """Ledger index → decision ids of the subject's payloads under live keys (erased keys' rows are gone)."""
    tag = privacy_ring(ws).scope_tag(Scope.subject(subject))
    p = privacy_payloads.c
    with ws.engine.connect() as conn:
        keys = select(privacy_keys.c.key_id).where(privacy_keys.c.scope_tag == tag)
        r = privacy_rows.c
        found: dict[int, set[str]] = {}
        for query in (
            select(r.decision_id, r.ledger_index).where(
                r.share.is_(None), r.outputs_key.in_(keys) | r.inputs_key.in_(keys), r.ledger_index.is_not(None)
            ),
            select(p.decision_id, p.ledger_index).where(p.key_id.in_(keys), p.ledger_index.is_not(None)),
        ):
            for decision_id, index in conn.execute(query):
                found.setdefault(int(index), set()).add(str(decision_id))
    return found


def _subject_batch_rows(ws: Workspace, subject: str) -> dict[str, set[str]]:
    """Batch id → payload ids (``batch:<id>:<row>``) of the subject's sealed batch rows under live keys."""
    tag = privacy_ring(ws).scope_tag(Scope.subject(subject))
    p = privacy_payloads.c
    keys = select(privacy_keys.c.key_id).where(privacy_keys.c.scope_tag == tag)
    found: dict[str, set[str]] = {}
    with ws.engine.connect() as conn:
        for (payload,) in conn.execute(select(p.decision_id).where(p.key_id.in_(keys), p.decision_id.like("batch:%"))):
            batch_id = str(payload).split(":")[1]
            found.setdefault(batch_id, set()).add(str(payload))
    return found


def _batch_rows(ws: Workspace, batch_id: str, wanted: set[str], size: int) -> list[dict[str, Any]]:
    """The subject's rows of one batch, opened, each with its entry's inclusion proof and its row's audit path."""
    index = ws.log.find_ref(batch_ref(batch_id))
    if index is None or index >= size:  # sealed, but its entry is not under the checkpoint: nothing to prove
        return []
    entry, _proof = ws.log.verified_entry(index)
    text = ws.log.entry(index).text
    path = [h.hex() for h in ws.log.inclusion_proof(index, size).path]
    with ws.engine.connect() as conn:
        claims = batch_claims(conn, entry.body, index)  # checked against the entry's commitments_root
        mine = [(position, c) for position, c in enumerate(claims) if c.decision_id in wanted]
        results = open_many(conn, privacy_ring(ws), [c for _, c in mine])
    leaves = [merkle.leaf_hash(commitment_leaf(int(c.decision_id.rsplit(":", 1)[1]), c.commitment.hex)) for c in claims]
    rows: list[dict[str, Any]] = []
    for (position, claim), result in zip(mine, results, strict=True):
        if not isinstance(result, Opened):
            raise IntegrityError(f"ledger entry {index}: a sealed row of batch {batch_id} does not open", index=index)
        rows.append({
            "ledger_index": index, "entry": text, "inclusion_proof": path, "batch": batch_id,
            "row": int(claim.decision_id.rsplit(":", 1)[1]), "value": result.value, "salt": result.salt.hex(),
            "row_position": position, "row_proof": [h.hex() for h in merkle.audit_path(leaves, position)],
        })  # fmt: skip
    return rows


def _opened(ws: Workspace, index: int, wanted: set[str], size: int) -> list[dict[str, Any]]:
    """The subject's payloads in entry ``index`` (a prediction's rows, or a feedback's expected value), opened."""
    entry, _proof = ws.log.verified_entry(index)
    text = ws.log.entry(index).text
    path = [h.hex() for h in ws.log.inclusion_proof(index, size).path]
    mine = [c for c in entry_claims(entry.kind, entry.body, index) if c.decision_id in wanted]
    with ws.engine.connect() as conn:
        results = open_many(conn, privacy_ring(ws), mine)
    by_id: dict[str, dict[str, Any]] = {}
    for claim, result in zip(mine, results, strict=True):
        if not isinstance(result, Opened):
            raise IntegrityError(f"ledger entry {index}: the {claim.field} of a decision does not open", index=index)
        row = by_id.setdefault(claim.decision_id, {"ledger_index": index, "entry": text, "inclusion_proof": path})
        if claim.field == "expected":
            row |= {"feedback_id": claim.decision_id, "decision_id": entry.body.get("decision_id")}
        else:
            row["decision_id"] = claim.decision_id
        row[claim.field] = result.value
        row[f"{claim.field}_salt"] = result.salt.hex()
    return list(by_id.values())


def export_subject(ws: Workspace, subject: str, *, principal: str) -> dict[str, Any]:
    """The export document for ``subject`` (decisions whose payloads are erased are counted, not listed)."""
    found = _subject_rows(ws, subject)
    note = ws.log.sign_head()
    checkpoint = Checkpoint.open(note, ws.log.verifier)
    opened: list[dict[str, Any]] = []
    for index in sorted(i for i in found if i < checkpoint.size):
        opened.extend(_opened(ws, index, found[index], checkpoint.size))
    batch_rows: list[dict[str, Any]] = []
    for batch_id, wanted in sorted(_subject_batch_rows(ws, subject).items()):
        batch_rows.extend(_batch_rows(ws, batch_id, wanted, checkpoint.size))
    document = {
        "format": FORMAT,
        "subject": subject,
        "exported": datetime.now(UTC).isoformat(),
        "checkpoint": note,
        "public_key": ws.log.verifier.vkey(),
        "decisions": [row for row in opened if "feedback_id" not in row],
        "feedback": [row for row in opened if "feedback_id" in row],
        "batch_rows": batch_rows,
    }
    decisions = document["decisions"]
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    ws.log.append(
        kind=EXPORT_KIND, subject="privacy:export", principal=principal,
        body={"decisions": len(decisions), "batch_rows": len(batch_rows), "checkpoint_size": checkpoint.size,
              "sha256": digest},
    )  # fmt: skip
    return document
