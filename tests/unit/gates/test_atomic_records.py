"""Each state change and its ledger entry commit together: a failure between them leaves neither."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection, func, select

from mlwarden.errors import InvalidInput
from mlwarden.identity.tokens import create_token, list_tokens, revoke_token
from mlwarden.ledger.log import LedgerTransaction
from mlwarden.registry.governance import approve, promote, set_stage
from mlwarden.registry.models import get_version, register_model
from mlwarden.store.schema import approvals, model_versions, tokens
from mlwarden.workspace import Workspace
from tests.unit.gates.conftest import Zoo

SIMPLE_POLICY = """
stages:
  staging: {gates: [model_card, artifact_safety]}
  production: {gates: [model_card, artifact_safety, approvals]}
gates:
  approvals: {required: 1}
"""


class AppendFailed(Exception):
    """The failure injected between a state change and its ledger entry."""


def _fail_appends(monkeypatch: pytest.MonkeyPatch, probe: Callable[[Connection], Any]) -> list[Any]:
    """Make every in-transaction ledger append raise; first record what ``probe`` sees inside the transaction."""
    seen: list[Any] = []

    def append(self: LedgerTransaction, **_entry: Any) -> None:
        seen.append(probe(self.conn))  # the change is there, inside the open transaction
        raise AppendFailed("the ledger append failed after the change was made")

    monkeypatch.setattr(LedgerTransaction, "append", append)
    return seen


def _kinds(ws: Workspace) -> list[str]:
    return [e.parse().kind for e in ws.log.tail(10_000)]


def _stage(ws: Workspace, version: int) -> str:
    return str(get_version(ws, "toy", version)["stage"])


def _intact(ws: Workspace) -> None:
    report = ws.log.verify()
    assert report.ok, report.to_json()


def test_failed_append_leaves_no_token(gated: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """token create: when its token.created entry fails, the token row is rolled back too."""
    size = gated.log.size()
    seen = _fail_appends(monkeypatch, lambda conn: conn.execute(select(func.count()).select_from(tokens)).scalar())
    with pytest.raises(AppendFailed):
        create_token(gated, name="svc", scopes=["inference:read"], principal="admin")
    assert seen == [1]
    assert list_tokens(gated) == []
    assert gated.log.size() == size
    _intact(gated)


def test_failed_append_leaves_the_token_unrevoked(gated: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """token revoke: when its token.revoked entry fails, the token stays valid and unrevoked."""
    _secret, record = create_token(gated, name="svc", scopes=["inference:read"], principal="admin")
    size = gated.log.size()
    seen = _fail_appends(
        monkeypatch, lambda conn: conn.execute(select(tokens.c.revoked).where(tokens.c.id == record.token_id)).scalar()
    )
    with pytest.raises(AppendFailed):
        revoke_token(gated, record.token_id, "admin")
    assert seen[0] is not None
    ((after, _problem),) = list_tokens(gated)
    assert after.revoked is None
    assert gated.log.size() == size
    assert "token.revoked" not in _kinds(gated)
    _intact(gated)


def test_failed_append_leaves_no_approval(gated: Workspace, zoo: Zoo, monkeypatch: pytest.MonkeyPatch) -> None:
    """approve: when its model.approved entry fails, no approval row remains to satisfy four eyes."""
    v = register_model(gated, name="toy", path=zoo.good, card_path=zoo.card, principal="alice").version
    size = gated.log.size()
    seen = _fail_appends(monkeypatch, lambda conn: conn.execute(select(func.count()).select_from(approvals)).scalar())
    with pytest.raises(AppendFailed):
        approve(gated, "toy", v, "bob")
    assert seen == [1]
    with gated.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(approvals)).scalar() == 0
    assert gated.log.size() == size
    _intact(gated)


def test_failed_append_leaves_stages_unchanged(gated: Workspace, zoo: Zoo, monkeypatch: pytest.MonkeyPatch) -> None:
    """promote: when model.promoted fails, the candidate is not production and the old version is not archived."""
    gated.options.paths.policy.write_text(SIMPLE_POLICY)
    first = register_model(gated, name="toy", path=zoo.good, card_path=zoo.card, principal="alice").version
    approve(gated, "toy", first, "bob")
    promote(gated, "toy", first, "production", "bob")
    second = register_model(gated, name="toy", path=zoo.weak, card_path=zoo.card, principal="alice").version
    approve(gated, "toy", second, "bob")
    promoted_before = _kinds(gated).count("model.promoted")
    seen = _fail_appends(
        monkeypatch,
        lambda conn: dict(conn.execute(select(model_versions.c.version, model_versions.c.stage)).all()),
    )
    with pytest.raises(AppendFailed):
        promote(gated, "toy", second, "production", "bob")
    assert seen == [{first: "archived", second: "production"}]
    assert (_stage(gated, first), _stage(gated, second)) == ("production", "candidate")
    assert _kinds(gated).count("model.promoted") == promoted_before
    assert _kinds(gated)[-1] == "gate.run"  # the gate run itself happened and is recorded
    _intact(gated)


def test_entry_the_ledger_refuses_rolls_back_the_stage(gated: Workspace, zoo: Zoo) -> None:
    """set_stage with a body the ledger cannot carry (NaN) raises and leaves the stage and the log as they were."""
    v = register_model(gated, name="toy", path=zoo.good, card_path=zoo.card, principal="alice").version
    size = gated.log.size()
    with pytest.raises(InvalidInput, match="NaN"):
        set_stage(gated, "toy", v, "staging", "bob", gates={"passed": True, "score": float("nan")})
    assert _stage(gated, v) == "candidate"
    assert gated.log.size() == size
    _intact(gated)


def test_approval_the_ledger_refuses_is_not_kept(gated: Workspace, zoo: Zoo) -> None:
    """approve with a comment too large for a ledger entry raises and keeps no approval row."""
    v = register_model(gated, name="toy", path=zoo.good, card_path=zoo.card, principal="alice").version
    size = gated.log.size()
    with pytest.raises(InvalidInput, match="limit"):
        approve(gated, "toy", v, "bob", comment="x" * (1 << 20))
    with gated.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(approvals)).scalar() == 0
    assert gated.log.size() == size
