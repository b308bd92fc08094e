"""A workspace for the console tests: a model in production, a candidate with a hostile card, a quarantined
batch, and tokens for an admin, a reviewer (a second person) and a data-only reader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.data.ingest import ingest
from mlwarden.identity.tokens import create_token
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.samples import breast_cancer_model
from mlwarden.workspace import init_workspace, open_workspace

HOSTILE = """
## Reviewer notes
<script>window.__pwned = 1; console.log("PWNED-BY-CARD")</script>
<img src="x" onerror="window.__pwned = 2">
[click me](javascript:window.__pwned=3)
**bold** and a [safe link](https://example.org/card).
"""
"""Appended to the candidate's model card: none of it may run in the console."""


@dataclass(frozen=True, slots=True)
class ConsoleWorkspace:
    options: WorkspaceOptions
    admin: str
    reviewer: str
    data_reader: str
    scorer: str
    batch_id: str
    eval_row: list[float]


def build_console_workspace(root: Path) -> ConsoleWorkspace:
    """bc:1 in production (registered by alice, approved by bob), bc:2 a candidate with :data:`HOSTILE` in
    its card, a batch of breast-cancer-train quarantined (ingested by local:etl), and four tokens."""
    first = breast_cancer_model(root / "v1", name="bc", trees=5, seed=0)
    second = breast_cancer_model(root / "v2", name="bc", trees=5, seed=1)
    second.card.write_text(second.card.read_text() + HOSTILE)
    options = WorkspaceOptions.from_settings(Settings(database_url=None), root / "ws")
    init_workspace(options)
    ws = open_workspace(options)
    try:
        register_dataset(ws, name="breast-cancer-train", path=first.train_csv, principal="alice", label="target")
        register_model(ws, name="bc", path=first.onnx, card_path=first.card, principal="alice")
        approve_and_promote(ws, "bc", 1, approver="bob")
        register_model(ws, name="bc", path=second.onnx, card_path=second.card, principal="alice")
        evaluation = pl.read_csv(first.eval_csv)
        poisoned = root / "batch-poisoned.csv"
        rows = pl.int_range(pl.len())
        evaluation.with_columns(
            pl.when(rows < 20).then(1 - pl.col("target")).otherwise(pl.col("target")).alias("target"),
            (pl.col(evaluation.columns[0]) * 40).alias(evaluation.columns[0]),
        ).write_csv(poisoned)
        outcome = ingest(ws, "breast-cancer-train", poisoned, "local:etl")
        if outcome["status"] != "quarantined":
            raise RuntimeError(f"the poisoned batch was {outcome['status']}, not quarantined")
        every = ["admin", "audit:read", "model:promote", "data:read", "data:write", "inference:read"]
        admin, _ = create_token(ws, name="console-admin", scopes=every, principal="local:setup",
                                grant=["inference:read", "audit:read", "data:read"])  # fmt: skip
        reviewer, _ = create_token(ws, name="reviewer", scopes=["audit:read", "model:promote"], principal="local:setup")
        data_reader, _ = create_token(ws, name="data-reader", scopes=["data:read"], principal="local:setup")
        scorer, _ = create_token(ws, name="scorer", scopes=["inference:read"], principal="local:setup")
        create_token(ws, name="retiring", scopes=["data:read"], principal="local:setup")
    finally:
        ws.close()
    header = first.eval_csv.read_text().splitlines()[1]
    return ConsoleWorkspace(options, admin, reviewer, data_reader, scorer, str(outcome["batch"]),
                            [float(v) for v in header.split(",")[:-1]])  # fmt: skip
