"""Ingesting batches: a clean batch is accepted as a new version; each poisoning is quarantined with its rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mlwarden.data.ingest import ingest, release, release_with_key, sign_release
from mlwarden.errors import InvalidInput, PolicyDenied, VerificationError
from mlwarden.identity.personal_keys import create_personal_key, load_personal_key
from mlwarden.identity.statements import SignedStatement
from mlwarden.registry.dataset_versions import get_dataset
from mlwarden.workspace import Workspace
from tests.support.cli import Cli
from tests.unit.data.conftest import NAMES, _batch


def test_clean_batches_are_accepted_as_new_versions(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """Clean batches drawn from the same data pass; each becomes a dataset version with its lineage."""
    for seed in range(3):
        rows, path = _batch(split[1], tmp_path, f"clean{seed}.csv", seed)
        rows.write_csv(path)
        outcome = ingest(dataset, "cells", path, "alice")
        assert outcome["status"] == "accepted", outcome["reasons"]
    latest = get_dataset(dataset, "cells")
    assert latest["version"] == 4
    assert json.loads(latest["lineage"])["parent_version"] == 3


@pytest.mark.parametrize("attack", ["label_flips", "trigger", "out_of_distribution", "duplicate_flood", "contract"])
def test_poisoned_batches_are_quarantined(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path, attack: str
) -> None:
    """Each attack quarantines the batch with a reason naming it, flags the poisoned rows, and merges nothing."""
    rows, path = _batch(split[1], tmp_path, f"{attack}.csv")
    target = rows.get_column("target").to_numpy().copy()
    poisoned = np.arange(10)
    if attack == "label_flips":
        target[poisoned] = 1 - target[poisoned]
        rows = rows.with_columns(pl.Series("target", target))
    elif attack == "trigger":
        marker = pl.int_range(pl.len()) < 6
        rows = rows.with_columns(
            pl.when(marker).then(77.0).otherwise(pl.col("f7")).alias("f7"),
            pl.when(marker).then(1).otherwise(pl.col("target")).alias("target"),
        )
        poisoned = np.arange(6)
    elif attack == "out_of_distribution":
        rows = rows.with_columns((pl.col("f0") * 6).alias("f0"), (pl.col("f2") * 6).alias("f2"))
    elif attack == "duplicate_flood":
        rows = pl.concat([rows, rows[:50]])
        poisoned = np.arange(200, 250)
    elif attack == "contract":
        rows = rows.with_columns(pl.when(pl.int_range(pl.len()) < 3).then(-1.0).otherwise(pl.col("f0")).alias("f0"))
        poisoned = np.arange(3)
    rows.write_csv(path)
    before = get_dataset(dataset, "cells")["version"]
    outcome = ingest(dataset, "cells", path, "mallory")
    assert outcome["status"] == "quarantined"
    keyword = {
        "label_flips": "label flips",
        "trigger": "backdoor trigger",
        "out_of_distribution": "drift",
        "duplicate_flood": "duplicate flood",
        "contract": "contract",
    }[attack]
    assert any(keyword in r for r in outcome["reasons"]), outcome["reasons"]
    if attack != "out_of_distribution":
        caught = set(outcome["flagged_rows"]) & set(poisoned.tolist())
        assert len(caught) >= 0.8 * len(poisoned), (attack, len(caught))
    assert get_dataset(dataset, "cells")["version"] == before
    kinds = [e.parse().kind for e in dataset.log.tail(3)]
    assert "data.batch_quarantined" in kinds


def test_release_needs_another_principal_and_a_reason(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """The ingester cannot release their own quarantined batch; someone else can, and it becomes a version."""
    rows, path = _batch(split[1], tmp_path, "dups.csv")
    pl.concat([rows, rows[:60]]).write_csv(path)
    batch = ingest(dataset, "cells", path, "mallory")["batch"]
    with pytest.raises(PolicyDenied):
        release(dataset, batch, "mallory", "trust me")
    with pytest.raises(InvalidInput):
        release(dataset, batch, "bob", " ")
    released = release(dataset, batch, "bob", "duplicates are expected from the replay job")
    assert released["status"] == "released"
    assert get_dataset(dataset, "cells")["version"] == released["dataset_version"]
    assert dataset.log.tail(1)[0].parse().kind == "data.batch_released"


def test_cli_ingest_exit_codes_and_bad_input(cli: Cli, split: tuple[Path, pl.DataFrame], tmp_path: Path) -> None:
    """data ingest prints the outcome JSON and exits 0 accepted, 1 quarantined, 2 bad input."""
    cli("init")
    assert cli("dataset", "register", "cells", str(split[0]), "--label", "target").code == 0
    rows, clean = _batch(split[1], tmp_path, "clean.csv")
    rows.write_csv(clean)
    accepted = cli("data", "ingest", "cells", str(clean))
    assert accepted.code == 0, accepted.err
    assert json.loads(accepted.out)["status"] == "accepted"
    flood = tmp_path / "flood.csv"
    pl.concat([rows, rows[:80]]).write_csv(flood)
    quarantined = cli("data", "ingest", "cells", str(flood))
    assert quarantined.code == 1
    outcome = json.loads(quarantined.out)
    assert {"batch", "status", "reasons", "flagged_rows"} <= outcome.keys()
    header = ",".join([*NAMES, "target"])
    mixed_row = ",".join(["1.0"] * 30 + ["0"])
    bad = {
        "empty.csv": "",
        "binary.csv": "\x00\x01\x02",
        "lacking.csv": "f0,f1\n1,2\nx,y\n",
        "mixed.csv": f"{header}\n{mixed_row}\n" + mixed_row.replace("1.0", "one", 1) + "\n",
        "ragged.csv": f"{header}\n1,2\n" + ",".join(["1"] * 40) + "\n",
        "wide.csv": ",".join(f"c{i}" for i in range(20_000)) + "\n" + ",".join("1" * 20_000) + "\n",
        "missing.csv": None,
    }
    for name, content in bad.items():
        path = tmp_path / name
        if content is not None:
            path.write_text(content)
        result = cli("data", "ingest", "cells", str(path))
        assert result.code == 2, (name, result.out, result.err)
        assert result.err.count("\n") == 1


def test_report_has_the_drift_chart_and_flagged_rows(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """--report-dir writes an HTML page with the PSI chart, the reasons and the flagged rows."""
    rows, path = _batch(split[1], tmp_path, "ood.csv")
    rows.with_columns((pl.col("f0") * 6).alias("f0")).write_csv(path)
    outcome = ingest(dataset, "cells", path, "mallory", report_dir=tmp_path / "reports")
    page = Path(outcome["report"]).read_text()
    assert "<svg" in page
    assert "PSI limit" in page
    assert "drift: f0" in page


def test_batches_over_http(dataset: Workspace, split: tuple[Path, pl.DataFrame]) -> None:
    """POST /v1/datasets/{name}/batches (scope data:write): 201 accepted, 202 quarantined, 403 without the scope."""
    from fastapi.testclient import TestClient

    from mlwarden.api.app import create_app
    from mlwarden.config import Settings
    from mlwarden.identity.tokens import create_token

    writer, _ = create_token(dataset, name="etl", scopes=["data:write"], principal="admin")
    reader, _ = create_token(dataset, name="reader", scopes=["inference:read"], principal="admin")
    rows = split[1][np.random.default_rng(3).choice(split[1].height, 200, replace=False)]
    clean = rows.write_csv().encode()
    flood = pl.concat([rows, rows[:80]]).write_csv().encode()
    app = create_app(
        dataset.options, Settings(database_url=dataset.options.database_url, gc_freeze=False, rate_limit=0)
    )
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {writer}", "content-type": "text/csv"}
        assert client.post("/v1/datasets/cells/batches?filename=b.csv", content=clean, headers=auth).status_code == 201
        refused = client.post("/v1/datasets/cells/batches?filename=b.csv", content=flood, headers=auth)
        assert refused.status_code == 202
        assert refused.json()["status"] == "quarantined"
        denied = client.post(
            "/v1/datasets/cells/batches", content=clean, headers={**auth, "Authorization": f"Bearer {reader}"}
        )
        assert denied.status_code == 403
        assert client.post("/v1/datasets/cells/batches?filename=x.exe", content=clean, headers=auth).status_code == 400


def _quarantined(ws: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path, ingester: str) -> str:
    rows, path = _batch(split[1], tmp_path, "dups.csv")
    pl.concat([rows, rows[:60]]).write_csv(path)
    outcome = ingest(ws, "cells", path, ingester)
    assert outcome["status"] == "quarantined"
    return str(outcome["batch"])


def _with_approvers(ws: Workspace, *lines: str) -> None:
    policy = ws.options.paths.policy
    policy.write_text(policy.read_text().replace("approvers: []", "approvers:\n" + "\n".join(lines)))


def test_release_signed_with_a_listed_key(dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path) -> None:
    """A release signed with bob's listed key is recorded as key:bob with the statement; the batch is a version."""
    bob = create_personal_key("bob", tmp_path / "keys")
    _with_approvers(dataset, bob.policy_line(()))
    batch = _quarantined(dataset, split, tmp_path, "local:alice")
    key = load_personal_key(bob.private_key)
    released = release_with_key(dataset, batch, "local:alice", key, "replayed rows", valid_for=timedelta(days=1))
    assert released["status"] == "released"
    entry = dataset.log.tail(1)[0].parse()
    assert (entry.kind, entry.principal) == ("data.batch_released", "key:bob")
    assert entry.body["statement"]["statement"]["reason"] == "replayed rows"
    assert entry.body["submitted_by"] == "local:alice"
    assert get_dataset(dataset, "cells")["version"] == released["dataset_version"]


def test_the_ingester_cannot_release_under_any_spelling(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """The ingester's own key, or a signed release for another batch, is refused and recorded."""
    alice = create_personal_key("alice", tmp_path / "keys")
    bob = create_personal_key("bob", tmp_path / "keys")
    _with_approvers(dataset, alice.policy_line(("local:alice",)), bob.policy_line(()))
    batch = _quarantined(dataset, split, tmp_path, "local:alice")
    with pytest.raises(PolicyDenied):
        release_with_key(
            dataset, batch, "local:bob", load_personal_key(alice.private_key), "mine", valid_for=timedelta(days=1)
        )
    assert dataset.log.tail(1)[0].parse().kind == "data.release_refused"
    with pytest.raises(PolicyDenied):
        release(dataset, batch, "local:alice", "mine")
    signed = sign_release(dataset, batch, load_personal_key(bob.private_key), "ok", valid_for=timedelta(days=1))
    other = SignedStatement({**signed.statement, "batch": "0" * 16}, signed.signature)
    with pytest.raises(VerificationError):
        release(dataset, batch, "local:carol", None, signed=other)
    mallory = create_personal_key("mallory", tmp_path / "keys")
    with pytest.raises(VerificationError, match="not listed"):
        release_with_key(
            dataset, batch, "local:carol", load_personal_key(mallory.private_key), "x", valid_for=timedelta(days=1)
        )
    kinds = [e.parse().kind for e in dataset.log.tail(4)]
    assert kinds.count("data.release_refused") == 4
    assert get_dataset(dataset, "cells")["version"] == 1
    assert release(dataset, batch, "local:carol", None, signed=signed)["status"] == "released"


def test_cli_release_by_the_ingester_with_another_user_variable_is_refused(
    cli: Cli, home: Path, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """USER/LOGNAME changed in a subprocess: the CLI still knows the ingester (exit 1); a signed file releases it."""
    cli("init")
    assert cli("dataset", "register", "cells", str(split[0]), "--label", "target").code == 0
    rows, flood = _batch(split[1], tmp_path, "flood.csv")
    pl.concat([rows, rows[:80]]).write_csv(flood)
    batch = json.loads(cli("data", "ingest", "cells", str(flood)).out)["batch"]
    env = {**os.environ, "USER": "reviewer", "LOGNAME": "reviewer"}
    env.pop("MLWARDEN_DATABASE_URL", None)
    spoofed = subprocess.run(
        [sys.executable, "-m", "mlwarden.cli", "--home", str(home), "data", "release", batch, "--reason", "trust me"],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert spoofed.returncode == 1, spoofed.stderr
    assert "another person must release it" in spoofed.stderr
    bob = create_personal_key("bob", tmp_path / "keys")
    policy = home / "policy.yaml"
    policy.write_text(policy.read_text().replace("approvers: []", "approvers:\n" + bob.policy_line(())))
    statement = tmp_path / "release.json"
    made = cli("data", "release", batch, "--reason", "replay", "--sign-with", str(bob.private_key), "--out",
               str(statement))  # fmt: skip
    assert made.code == 0, made.err
    assert json.loads(cli("dataset", "show", "cells").out)["version"] == 1  # --out released nothing
    released = cli("data", "release", batch, "--approval", str(statement))
    assert released.code == 0, released.err
    assert json.loads(released.out)["status"] == "released"
    assert json.loads(cli("dataset", "show", "cells").out)["version"] == 2
