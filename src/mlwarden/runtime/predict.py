"""Validated, recorded predictions: the decision is in the ledger before anyone sees it."""

from __future__ import annotations

import time
from typing import Any

from mlwarden.ledger.entry import PreparedEntry
from mlwarden.registry.models import load_model
from mlwarden.runtime.decision_ids import decision_ids
from mlwarden.subjects.free_text import screen_rows
from mlwarden.subjects.leader_sealing import pending_prediction
from mlwarden.subjects.privacy_policy import load_privacy_policy
from mlwarden.subjects.sealing import SealedRows, check_subjects
from mlwarden.workspace import Workspace


def prediction_record(
    row: dict[str, Any], decision_ids: list[str], sealed: SealedRows, *, principal: str, **extra: Any
) -> PreparedEntry:
    """The ledger entry that records one answered prediction (version 2), carrying its sealed payloads.

    The body holds the facts and one salted commitment per row for its inputs and its outputs;
    the payloads themselves travel as the entry's attachments, written in its transaction. (An
    in-process caller records with :func:`~mlwarden.subjects.leader_sealing.pending_prediction`
    instead: the group commit seals its batch at once.)
    """
    body = {
        "model": row["name"],
        "version": row["version"],
        "sha256": row["sha256"],
        "decision_ids": decision_ids,
        **sealed.body,
        **extra,
    }
    return PreparedEntry.build(
        kind="prediction", subject=f"model:{row['name']}:{row['version']}", principal=principal, body=body,
        attachments=sealed.attachments,  # the rows (keyed by decision id) index its decisions: no ledger_refs
    )  # fmt: skip


def predict(
    ws: Workspace, name: str, version: int | None, rows: Any, principal: str, subjects: list[str] | None = None
) -> dict[str, Any]:
    """Validate ``rows`` against the version's signature, predict, record (inputs sealed), then return."""
    served = load_model(ws, name, version, principal)
    row = served.row
    screen_rows(rows, load_privacy_policy(ws.options.paths.policy).free_text)
    inputs = served.validator.validate(rows)
    started = time.perf_counter()
    outputs = served.model.predict(inputs).rows()
    elapsed_ms = (time.perf_counter() - started) * 1000
    decisions = decision_ids(len(outputs))
    checked = check_subjects(subjects, len(outputs))
    recorded_inputs = list(rows)  # validate() accepts only a list of rows
    entry = pending_prediction(
        ws, row, decisions, recorded_inputs, outputs, checked, principal=principal, latency_ms=round(elapsed_ms, 3)
    )
    receipt = ws.log.append_many([entry])[0]
    return prediction_response(row, outputs, decisions, receipt.index)


def prediction_response(
    row: dict[str, Any], outputs: list[dict[str, Any]], decision_ids: list[str], ledger_index: int
) -> dict[str, Any]:
    """What a caller gets back: predictions, the exact version, one decision id per row, the ledger index."""
    return {
        "model": row["name"],
        "version": row["version"],
        "sha256": row["sha256"],
        "predictions": outputs,
        "decision_ids": decision_ids,
        "ledger_index": ledger_index,
    }
