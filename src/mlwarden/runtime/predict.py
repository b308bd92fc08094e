"""Validated, recorded predictions: the decision is in the ledger before anyone sees it."""

from __future__ import annotations

import time
import uuid
from typing import Any

from mlwarden.registry.models import load_model
from mlwarden.workspace import Workspace


def prediction_record(
    row: dict[str, Any], decision_ids: list[str], inputs: Any, outputs: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    """The ledger entry (kind, subject, body, refs) that records one answered prediction."""
    return {
        "kind": "prediction",
        "subject": f"model:{row['name']}:{row['version']}",
        "body": {"sha256": row["sha256"], "decision_ids": decision_ids, "inputs": inputs, "outputs": outputs, **extra},
        "refs": tuple(decision_ids),
    }


def predict(ws: Workspace, name: str, version: int | None, rows: Any, principal: str) -> dict[str, Any]:
    """Validate ``rows`` against the version's signature, predict, record, then return."""
    served = load_model(ws, name, version, principal)
    row = served.row
    inputs = served.validator.validate(rows)
    started = time.perf_counter()
    outputs = served.model.predict(inputs).rows()
    elapsed_ms = (time.perf_counter() - started) * 1000
    decisions = [str(uuid.uuid4()) for _ in outputs]
    recorded_inputs = rows if isinstance(rows, list) else inputs.tolist() if hasattr(inputs, "tolist") else None
    record = prediction_record(row, decisions, recorded_inputs, outputs, latency_ms=round(elapsed_ms, 3))
    receipt = ws.log.append(**record, principal=principal)
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
