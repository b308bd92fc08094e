"""Retention: exactly the inputs of days before the cut-off are erased; outputs, facts and proofs stay."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mlwarden.errors import InvalidInput
from mlwarden.ledger.duties import DutyRunner
from mlwarden.ledger.entry import Entry
from mlwarden.runtime.predict import prediction_record
from mlwarden.store.lease import Lease, lease_engine
from mlwarden.subjects.audit import audit_payloads
from mlwarden.subjects.decisions import prediction_payloads
from mlwarden.subjects.privacy_policy import parse_privacy_policy
from mlwarden.subjects.retention import apply_retention, register_retention
from mlwarden.subjects.sealing import seal_rows
from mlwarden.workspace import Workspace

MODEL = {"name": "bc", "version": 1, "sha256": "a" * 64}


def _record(ws: Workspace, tag: str, subjects: list[str] | None, sealed_at: datetime) -> int:
    """A two-row prediction whose payloads were sealed at ``sealed_at`` (their key's day)."""
    ids = [f"{tag}-0", f"{tag}-1"]
    sealed = seal_rows(ws, ids, [[1.0, 2.0], [3.0, 4.0]], [{"label": 0}, {"label": 1}], subjects, now=sealed_at)
    return ws.log.append_many([prediction_record(MODEL, ids, sealed, principal="local:t")])[0].index


def _opened(ws: Workspace, index: int) -> dict[str, list[Any]]:
    return prediction_payloads(ws, Entry.parse(ws.log.entry(index).text).to_json())


def _policy(ws: Workspace, text: str) -> None:
    ws.options.paths.policy.write_text(text, encoding="utf-8")


def test_retention_erases_exactly_the_expired_inputs(workspace: Workspace) -> None:
    """Inputs sealed before the cut-off day are erased (subject and own keys); newer inputs and all outputs open."""
    today = datetime.now(UTC)
    old_own = _record(workspace, "old-own", None, today - timedelta(days=1))
    old_subject = _record(workspace, "old-subj", ["s1", "s2"], today - timedelta(days=1))
    new_own = _record(workspace, "new-own", None, today)
    new_subject = _record(workspace, "new-subj", ["s1", "s2"], today)
    _policy(workspace, "privacy:\n  inputs_retention_days: 3\n")
    result = apply_retention(workspace, now=today + timedelta(days=3))  # cut-off: today
    assert result["inputs_retention_days"] == 3
    assert result["keys_destroyed"] == 3  # yesterday's inputs keys: the unnamed scope's (old-own rows), s1, s2
    erasure = Entry.parse(workspace.log.entry(result["ledger_index"]).text)
    assert erasure.body["what"] == "retention"
    assert erasure.body["inputs_before"] == today.strftime("%Y-%m-%d")
    gone = {"erased": True, "erasure_index": result["ledger_index"]}
    for index in (old_own, old_subject):
        assert _opened(workspace, index) == {"inputs": [gone, gone], "outputs": [{"label": 0}, {"label": 1}]}
    for index in (new_own, new_subject):
        assert _opened(workspace, index)["inputs"] == [[1.0, 2.0], [3.0, 4.0]]
    report = audit_payloads(workspace)
    assert (report.verified, report.erased, report.tampered) == (12, 4, [])
    again = apply_retention(workspace, now=today + timedelta(days=3))
    assert again["keys_destroyed"] == 0
    assert workspace.log.size() == result["ledger_index"] + 1  # nothing expired: nothing recorded


def test_retention_duty_runs_on_the_lease_holder(workspace: Workspace) -> None:
    """Registered on a duty runner, retention erases expired inputs once this process holds the writer lease."""
    index = _record(workspace, "aged", None, datetime.now(UTC) - timedelta(days=5))
    _policy(workspace, "privacy: {inputs_retention_days: 2}\n")
    engine = lease_engine(workspace.options.database_url, timeout=2.0)
    runner = DutyRunner(Lease(engine, "ledger.writer", ttl=5.0), tick=0.05, owns_engine=True)
    register_retention(runner, workspace, every=0.1)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while runner.runs["privacy.retention"] < 1:
            assert time.monotonic() < deadline, "the retention duty never ran"
            time.sleep(0.05)
    finally:
        runner.close()
    assert _opened(workspace, index)["inputs"][0]["erased"] is True
    assert _opened(workspace, index)["outputs"] == [{"label": 0}, {"label": 1}]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"inputs_retention_days": 0}, "whole number"),
        ({"inputs_retention_days": "30"}, "whole number"),
        ({"inputs_retention_days": True}, "whole number"),
        ({"free_text": "drop"}, "mask or refuse"),
        ({"retention": 3}, "unknown keys: retention"),
        ([1], "must be a mapping"),
    ],
)
def test_bad_privacy_policy_is_refused(raw: object, problem: str) -> None:
    """A privacy section with a wrong value or key is an error, never silently ignored."""
    with pytest.raises(InvalidInput, match=problem):
        parse_privacy_policy(raw)
