"""Registering, tracing and loading models and datasets, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update

from mlwarden.errors import ArtifactIntegrityError, InvalidInput, NotFound, UnsafeArtifact
from mlwarden.ledger.entry import Entry
from mlwarden.registry.artifacts import ArtifactStore
from mlwarden.registry.dataset_versions import get_dataset, register_dataset
from mlwarden.registry.models import describe, get_version, lineage, load_model, register_model
from mlwarden.samples import SampleModel
from mlwarden.store.schema import model_versions
from mlwarden.workspace import Workspace


def _kinds(ws: Workspace) -> list[str]:
    return [Entry.parse(t).kind for _i, t, _h in ws.log.iter_rows()]


def _register(ws: Workspace, sample: SampleModel, path: Path | None = None, **kw: Any) -> dict[str, Any]:
    return register_model(
        ws, name="bc", path=path or sample.onnx, card_path=sample.card, principal="alice", **kw
    ).to_json()


def test_register_versions_by_content(workspace: Workspace, sample: SampleModel) -> None:
    """New bytes make a new version; the same bytes again return the existing one."""
    first = _register(workspace, sample)
    assert (first["name"], first["version"], first["stage"], first["created"]) == ("bc", 1, "candidate", True)
    assert first["sha256"] == hashlib.sha256(sample.onnx.read_bytes()).hexdigest()
    again = _register(workspace, sample)
    assert (again["version"], again["created"]) == (1, False)
    second = _register(workspace, sample, sample.skops)
    assert (second["version"], second["format"]) == (2, "skops")
    assert _kinds(workspace) == ["model.registered", "model.registered"]
    stored = ArtifactStore(workspace.options.paths.artifacts).path_for(str(first["sha256"]))
    assert stored.read_bytes() == sample.onnx.read_bytes()
    assert stored.parent.name == str(first["sha256"])[:2]


def test_card_signature_and_lineage_are_kept(workspace: Workspace, sample: SampleModel) -> None:
    """show has the parsed card, the narrowed signature and the lineage tree with datasets by hash."""
    ds = register_dataset(workspace, name="bc-train", path=sample.train_csv, principal="alice")
    ref = f"bc-train@sha256:{ds['sha256']}"
    _register(workspace, sample, datasets=[ref], code_commit="abc1234", signature_path=sample.signature)
    _register(workspace, sample, sample.skops, parent="bc:1")
    shown = describe(get_version(workspace, "bc", 1))
    assert shown["card"]["metadata"]["license"] == "apache-2.0"
    assert shown["card"]["known_sections"]["intended_use"] is True
    assert shown["signature"]["features"][0]["name"] == "mean_radius"
    assert shown["signature"]["features"][0]["min"] == 0.0
    tree = lineage(workspace, "bc", 2)
    assert tree["parents"][0]["model"] == "bc:1"
    assert tree["parents"][0]["datasets"] == [{"name": "bc-train", "sha256": ds["sha256"], "version": 1}]
    assert tree["parents"][0]["code_commit"] == "abc1234"


def test_unknown_dataset_or_parent_is_refused(workspace: Workspace, sample: SampleModel) -> None:
    """Lineage must point at registered things."""
    with pytest.raises(NotFound):
        _register(workspace, sample, datasets=["nope@sha256:" + "0" * 64])
    with pytest.raises(InvalidInput):
        _register(workspace, sample, datasets=["not-a-ref"])
    with pytest.raises(NotFound):
        _register(workspace, sample, parent="ghost:3")
    assert _kinds(workspace) == []


def test_malicious_model_is_refused_and_recorded(workspace: Workspace, tmp_path: Path) -> None:
    """Registering a pickle disguised as ONNX fails, records a refusal, stores nothing."""
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "model.onnx"
    bad.write_bytes(pickle.dumps(Evil()))
    card = tmp_path / "card.md"
    card.write_text("# card\n")
    with pytest.raises(UnsafeArtifact, match=r"posix\.system"):
        register_model(workspace, name="evil", path=bad, card_path=card, principal="mallory")
    entries = [Entry.parse(t) for _i, t, _h in workspace.log.iter_rows()]
    assert [e.kind for e in entries] == ["model.refused"]
    assert entries[0].body["found"] == ["posix.system"]
    assert not marker.exists()
    with workspace.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM model_versions")).scalar() == 0


def test_tampered_artifact_is_refused_at_load(workspace: Workspace, sample: SampleModel) -> None:
    """Bytes changed on disk after registration: the load fails and the ledger says so."""
    reg = _register(workspace, sample)
    path = ArtifactStore(workspace.options.paths.artifacts).path_for(str(reg["sha256"]))
    os.chmod(path, 0o600)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="changed on disk"):
        load_model(workspace, "bc", 1, "svc")
    assert _kinds(workspace)[-1] == "model.integrity_failed"


def test_rewritten_registry_row_fails_its_signature(workspace: Workspace, sample: SampleModel) -> None:
    """Pointing a version at other bytes in the database breaks its registration signature."""
    _register(workspace, sample)
    other = register_model(workspace, name="other", path=sample.skops, card_path=sample.card, principal="a").to_json()
    with workspace.engine.begin() as conn:
        conn.execute(update(model_versions).where(model_versions.c.name == "bc").values(sha256=other["sha256"]))
    with pytest.raises(ArtifactIntegrityError, match="signature"):
        load_model(workspace, "bc", 1, "svc")
    assert _kinds(workspace)[-1] == "model.integrity_failed"


def test_dataset_profile(workspace: Workspace, sample: SampleModel) -> None:
    """A dataset version has its hash, rows, schema fingerprint and per-column statistics."""
    ds = register_dataset(workspace, name="bc-train", path=sample.train_csv, principal="alice")
    assert ds["rows"] == 426
    assert ds["sha256"] == hashlib.sha256(sample.train_csv.read_bytes()).hexdigest()
    shown = get_dataset(workspace, "bc-train")
    radius = shown["profile"]["columns"]["mean_radius"]
    assert 0 < radius["quantiles"]["0.5"] < 30
    assert radius["null_rate"] == 0
    assert set(shown["profile"]["columns"]) >= {"target", "mean_radius"}
    again = register_dataset(workspace, name="bc-train", path=sample.train_csv, principal="alice")
    assert (again["version"], again["created"]) == (1, False)


def test_dataset_categorical_profile_and_jsonl(workspace: Workspace, tmp_path: Path) -> None:
    """JSON lines with string columns get category frequencies and null rates."""
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps({"city": c, "n": i if i % 4 else None}) for i, c in enumerate("aabac")) + "\n")
    ds = register_dataset(workspace, name="cities", path=path, principal="p")
    columns = get_dataset(workspace, "cities")["profile"]["columns"]
    assert ds["rows"] == 5
    assert columns["city"]["frequencies"]["a"] == pytest.approx(0.6)
    assert columns["n"]["null_rate"] == pytest.approx(0.4)


def test_dvc_tracked_dataset(workspace: Workspace, sample: SampleModel, tmp_path: Path) -> None:
    """--from-dvc records the md5 and path of the .dvc file, and checks a local copy against it."""
    local = tmp_path / "train.csv"
    local.write_bytes(sample.train_csv.read_bytes())
    md5 = hashlib.md5(local.read_bytes(), usedforsecurity=False).hexdigest()
    dvc = tmp_path / "train.csv.dvc"
    dvc.write_text(f"outs:\n- md5: {md5}\n  size: {local.stat().st_size}\n  hash: md5\n  path: train.csv\n")
    ds = register_dataset(workspace, name="dvc-data", path=None, principal="p", dvc=dvc)
    assert (ds["md5"], ds["rows"]) == (md5, 426)
    dvc.write_text("outs:\n- md5: '" + "0" * 32 + "'\n  path: train.csv\n")
    with pytest.raises(InvalidInput, match="does not match"):
        register_dataset(workspace, name="dvc-data", path=None, principal="p", dvc=dvc)
    local.unlink()
    remote_only = register_dataset(workspace, name="dvc-remote", path=None, principal="p", dvc=dvc)
    assert (remote_only["md5"], remote_only["sha256"], remote_only["rows"]) == ("0" * 32, None, None)
