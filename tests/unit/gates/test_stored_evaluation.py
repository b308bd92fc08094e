"""Gates read registered evaluation data from the workspace's store: relative paths and moved files still work."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.registry.dataset_versions import get_dataset, register_dataset
from mlwarden.registry.governance import approve, attach_report, promote
from mlwarden.registry.models import register_model
from mlwarden.workspace import init_workspace, open_workspace
from tests.unit.gates.conftest import POLICY, Zoo
from tests.unit.gates.test_gates import _clean_report


def test_evaluation_data_registered_by_relative_path_is_read_from_the_store(
    tmp_path: Path, zoo: Zoo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """toy-eval registered as ./eval.csv, then deleted: performance and fairness still run on its stored bytes."""
    options = WorkspaceOptions.from_settings(Settings(database_url=None), tmp_path / "ws")
    init_workspace(options)
    options.paths.policy.write_text(POLICY)
    work = tmp_path / "checkout"
    work.mkdir()
    shutil.copy(zoo.eval_csv, work / "eval.csv")
    monkeypatch.chdir(work)
    ws = open_workspace(options)
    try:
        register_dataset(ws, name="toy-train", path=zoo.train_csv, principal="alice")
        register_dataset(ws, name="toy-eval", path=Path("eval.csv"), principal="alice")
        (work / "eval.csv").unlink()
        source = Path(get_dataset(ws, "toy-eval")["source"])
        assert source.is_relative_to(options.paths.artifacts)
        version = register_model(ws, name="toy", path=zoo.good, card_path=zoo.card, principal="alice").version
        attach_report(ws, "toy", version, _clean_report(tmp_path), "alice")
        approve(ws, "toy", version, "bob")
        result = promote(ws, "toy", version, "production", "bob")
        assert result["stage"] == "production"
    finally:
        ws.close()
