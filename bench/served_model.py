"""The workspace the HTTP benchmarks serve: the sample model in production and an inference token."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.tokens import create_token
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.samples import SampleModel, breast_cancer_model
from mlwarden.workspace import init_workspace, open_workspace


@dataclass(frozen=True)
class Served:
    """The workspace, an inference token for it, a one-row predict body and the ONNX file served."""

    options: WorkspaceOptions
    token: str
    body: dict[str, Any]
    onnx: Path
    sample: SampleModel


def served_workspace(root: Path, database_url: str | None, *, trees: int = 50, lineage: bool = False) -> Served:
    """Create ``root/ws`` with model ``bc`` v1 in production (the sample random forest, 50 trees by default).

    ``lineage``: the training set is registered with its label column and the model with its input
    signature and that dataset in its lineage, as the watcher's inference rules need them.
    """
    sample = breast_cancer_model(root / "art", trees=trees)
    options = WorkspaceOptions.from_settings(Settings(database_url=database_url), root / "ws")
    init_workspace(options)
    ws = open_workspace(options)
    try:
        found = register_dataset(ws, name="breast-cancer-train", path=sample.train_csv, principal="bench",
                                 label="target" if lineage else None)  # fmt: skip
        register_model(ws, name="bc", path=sample.onnx, card_path=sample.card, principal="bench",
                       signature_path=sample.signature if lineage else None,
                       datasets=[f"breast-cancer-train@sha256:{found['sha256']}"] if lineage else [])  # fmt: skip
        approve_and_promote(ws, "bc", 1, approver="reviewer")
        token, _ = create_token(ws, name="bench", scopes=["inference:read"], principal="bench")
    finally:
        ws.close()
    row = [float(v) for v in sample.eval_csv.read_text().splitlines()[1].split(",")[:-1]]
    return Served(options, token, {"inputs": [row]}, sample.onnx, sample)
