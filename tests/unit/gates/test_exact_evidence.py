"""Evidence is exact: approvals from the ledger only, rollbacks through today's gates, stages linked to entries."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, insert, update

from mlwarden.errors import GateFailed
from mlwarden.registry.governance import attach_report, promote, rollback, set_alias, stage_drift
from mlwarden.registry.models import resolve_alias
from mlwarden.store.schema import approvals, attachments, model_aliases
from mlwarden.trust.follower import trusted_state
from mlwarden.workspace import Workspace
from tests.unit.gates.conftest import Zoo
from tests.unit.gates.test_gates import _clean_report, _ready, _refused_by, _register, _trivy

LAX = "gates: [model_card, artifact_safety, approvals]"
STRICT = "gates: [model_card, artifact_safety, performance, fairness, vulnerabilities, approvals]"


def _policy(ws: Workspace, gates: str) -> None:
    text = ws.options.paths.policy.read_text()
    ws.options.paths.policy.write_text(text.replace(STRICT, gates).replace(LAX, gates))


def test_approval_rows_inserted_by_sql_do_not_count(gated: Workspace, zoo: Zoo, tmp_path: Path) -> None:
    """Four eyes reads verified model.approved entries: a planted approvals row passes nothing, and is named."""
    v = _register(gated, zoo.good, zoo.card)
    attach_report(gated, "toy", v, _clean_report(tmp_path), "alice")
    with gated.engine.begin() as conn:
        conn.execute(insert(approvals).values(name="toy", version=v, principal="bob", created="2026", comment=None))
    _refused_by(gated, v, "approvals", "approval")
    assert any(d["table"] == "approvals" and d["row"] == f"model:toy:{v}:bob" for d in stage_drift(gated))


def test_rollback_runs_todays_gates_and_refuses_a_model_the_policy_now_rejects(
    gated: Workspace, zoo: Zoo, tmp_path: Path
) -> None:
    """A biased version served under a lax policy cannot come back by rollback once fairness is required."""
    _policy(gated, LAX)
    biased = _register(gated, zoo.biased, zoo.card)
    _ready(gated, tmp_path, biased)
    promote(gated, "toy", biased, "production", "bob")
    _policy(gated, STRICT)
    good = _register(gated, zoo.good, zoo.card)
    _ready(gated, tmp_path, good)
    promote(gated, "toy", good, "production", "bob")
    size = gated.log.size()
    with pytest.raises(GateFailed, match="fairness"):
        rollback(gated, "toy", "bob")
    kinds = [e.parse().kind for e in gated.log.tail(gated.log.size() - size)]
    assert kinds == ["gate.run", "model.promotion_refused"]
    served = trusted_state(gated).production("toy")
    assert served is not None
    assert served.version == good


def test_rollback_links_the_stage_to_a_fresh_gate_run(gated: Workspace, zoo: Zoo, tmp_path: Path) -> None:
    """A rollback that passes today's gates is recorded with its own gate run; the stage points at that entry."""
    _policy(gated, LAX)
    first = _register(gated, zoo.good, zoo.card)
    _ready(gated, tmp_path, first)
    old = promote(gated, "toy", first, "production", "bob")
    second = _register(gated, zoo.weak, zoo.card)
    _ready(gated, tmp_path, second)
    promote(gated, "toy", second, "production", "bob")
    back = rollback(gated, "toy", "bob")
    assert back["version"] == first
    entry = gated.log.entry(back["ledger_index"]).parse()
    assert entry.kind == "model.rolled_back"
    assert entry.body["gates"]["gate_run"] > old["ledger_index"]
    facts = trusted_state(gated).version("toy", first)
    assert facts is not None
    assert (facts.stage, facts.stage_index) == ("production", back["ledger_index"])


def test_deleting_an_attachment_row_hides_no_vulnerability_report(gated: Workspace, zoo: Zoo, tmp_path: Path) -> None:
    """Reports come from model.report_attached entries: dropping the row of a critical finding hides nothing."""
    v = _register(gated, zoo.good, zoo.card)
    _ready(gated, tmp_path, v)
    critical = attach_report(gated, "toy", v, _trivy(tmp_path, "CVE-2099-0001", "CRITICAL"), "alice")
    with gated.engine.begin() as conn:
        conn.execute(delete(attachments).where(attachments.c.sha256 == critical["sha256"]))
    _refused_by(gated, v, "vulnerabilities", "CVE-2099-0001")


def test_alias_rows_changed_by_sql_resolve_as_the_ledger_says(gated: Workspace, zoo: Zoo) -> None:
    """An alias re-pointed by UPDATE still resolves to the version its model.alias_set entry names; audit names it."""
    first = _register(gated, zoo.good, zoo.card)
    second = _register(gated, zoo.weak, zoo.card)
    set_alias(gated, "toy", "champion", first, "bob")
    with gated.engine.begin() as conn:
        conn.execute(update(model_aliases).where(model_aliases.c.alias == "champion").values(version=second))
    assert resolve_alias(gated, "toy", "champion") == first
    assert any(d["table"] == "model_aliases" and d["row"] == "toy@champion" for d in stage_drift(gated))
