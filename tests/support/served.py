"""The sample model served as the watcher's inference rules need it: with its training set in its lineage."""

from __future__ import annotations

from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.samples import SampleModel
from mlwarden.workspace import Workspace


def bc_in_production(ws: Workspace, sample: SampleModel, *, principal: str = "alice", described: bool = False) -> str:
    """Register the sample's training set and model ``bc`` v1 (ONNX, that dataset in its lineage), approve and
    promote it; returns the dataset's sha256.

    ``described``: the dataset with its label column and the model with its input signature.
    """
    found = register_dataset(ws, name="breast-cancer-train", path=sample.train_csv, principal=principal,
                             label="target" if described else None)  # fmt: skip
    register_model(ws, name="bc", path=sample.onnx, card_path=sample.card, principal=principal,
                   signature_path=sample.signature if described else None,
                   datasets=[f"breast-cancer-train@sha256:{found['sha256']}"])  # fmt: skip
    approve_and_promote(ws, "bc", 1, approver="reviewer")
    return str(found["sha256"])
