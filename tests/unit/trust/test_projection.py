"""The enforced state as a pure fold: exact subjects, one-way revocation, stage links, snapshot round trips."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.ledger.entry import Entry
from mlwarden.trust.projection import TrustedState, model_subject


def _entry(index: int, kind: str, subject: str, body: dict[str, Any], principal: str = "alice") -> Entry:
    return Entry(index, kind, "2026-11-26T00:00:00.000000Z", principal, subject, body)


def _fold(entries: list[Entry]) -> TrustedState:
    state = TrustedState()
    for entry in entries:
        state.apply(entry)
    return state


def _gated(index: int, name: str, version: int, sha: str, replaced: int | None = None) -> Entry:
    body = {"to": "production", "sha256": sha, "replaced": replaced, "gates": {"passed": True}}
    return _entry(index, "model.promoted", f"model:{name}:{version}", body, "bob")


def test_subjects_match_exactly_never_by_prefix() -> None:
    """A promotion of bc:12 says nothing about bc:1 (the old prefix lookup confused them)."""
    state = _fold(
        [
            _entry(0, "model.registered", "model:bc:1", {"sha256": "a" * 64}),
            _entry(1, "model.registered", "model:bc:12", {"sha256": "b" * 64}),
            _gated(2, "bc", 12, "b" * 64),
        ]
    )
    served = state.production("bc")
    assert served is not None
    assert (served.version, served.stage_index) == (12, 2)
    first = state.version("bc", 1)
    assert first is not None
    assert first.stage == "candidate"
    assert model_subject("model:bc:12") == ("bc", 12)
    assert model_subject("model:bc:1:extra") is None
    assert model_subject("model:bc:") is None


def test_promotion_without_passed_gates_or_with_other_bytes_serves_nothing() -> None:
    """Only a gated promotion of exactly the registered sha256 puts a version in production."""
    ungated = {"to": "production", "sha256": "a" * 64, "gates": None}
    state = _fold(
        [
            _entry(0, "model.registered", "model:m:1", {"sha256": "a" * 64}),
            _entry(1, "model.promoted", "model:m:1", ungated),
            _gated(2, "m", 1, "f" * 64),
        ]
    )
    assert state.production("m") is None


def test_revocation_is_one_way_and_recreation_is_ignored() -> None:
    """A second token.created for the same id cannot replace the first, and revocation sticks."""
    created = {"id": "abcd", "name": "t", "scopes": ["inference:read"], "models": None, "expires": None}
    widened = {**created, "scopes": ["admin"]}
    state = _fold(
        [
            _entry(0, "token.created", "token:abcd", created),
            _entry(1, "token.revoked", "token:abcd", {}),
            _entry(2, "token.created", "token:abcd", widened),
        ]
    )
    facts = state.tokens["abcd"]
    assert (facts.scopes, facts.revoked_index) == (("inference:read",), 1)


def test_new_production_archives_the_old_and_remembers_it_for_rollback() -> None:
    """The replaced version is archived by the entry that replaced it; ``replaced`` names the rollback target."""
    state = _fold(
        [
            _entry(0, "model.registered", "model:m:1", {"sha256": "a" * 64}),
            _entry(1, "model.registered", "model:m:2", {"sha256": "b" * 64}),
            _gated(2, "m", 1, "a" * 64),
            _gated(3, "m", 2, "b" * 64, replaced=1),
        ]
    )
    old = state.version("m", 1)
    assert old is not None
    assert (old.stage, old.stage_index) == ("archived", 3)
    assert state.models["m"].replaced == 1


def test_approvals_count_only_for_the_registered_bytes() -> None:
    """An approval entry naming another sha256 is not an approval of this version."""
    state = _fold(
        [
            _entry(0, "model.registered", "model:m:1", {"sha256": "a" * 64}),
            _entry(1, "model.approved", "model:m:1", {"sha256": "a" * 64}, "bob"),
            _entry(2, "model.approved", "model:m:1", {"sha256": "b" * 64}, "carol"),
        ]
    )
    facts = state.version("m", 1)
    assert facts is not None
    assert facts.approvals == {"bob": 1}


_KINDS = st.sampled_from(["token.created", "token.revoked", "model.registered", "model.approved", "model.promoted"])


@st.composite
def _entries(draw: st.DrawFn) -> list[Entry]:
    out = []
    for index in range(draw(st.integers(0, 25))):
        kind = draw(_KINDS)
        version = draw(st.integers(1, 3))
        sha = draw(st.sampled_from(["a", "b"])) * 64
        token = draw(st.sampled_from(["t1", "t2"]))
        if kind.startswith("token"):
            models = draw(st.sampled_from([None, ["m"]]))
            grant = draw(st.sampled_from([None, ["audit:read"]]))
            body: dict[str, Any] = {"id": token, "name": token, "scopes": ["admin"], "models": models, "grant": grant}
            out.append(_entry(index, kind, f"token:{token}", {k: v for k, v in body.items() if v is not None}))
        else:
            to = draw(st.sampled_from(["production", "staging", "archived"]))
            replaced = draw(st.sampled_from([None, 1, 2]))
            body = {"sha256": sha, "to": to, "gates": {"passed": draw(st.booleans())}, "replaced": replaced}
            out.append(_entry(index, kind, f"model:m:{version}", body, draw(st.sampled_from(["bob", "carol"]))))
    return out


@settings(max_examples=200, deadline=None)
@given(_entries(), st.integers(0, 25))
def test_snapshot_then_fold_equals_one_fold(entries: list[Entry], cut: int) -> None:
    """Folding a prefix, snapshotting through JSON, then folding the rest equals folding everything."""
    cut = min(cut, len(entries))
    head = _fold(entries[:cut])
    restored = TrustedState.from_json(json.loads(json.dumps(head.to_json())))
    for entry in entries[cut:]:
        restored.apply(entry)
    assert restored.to_json() == _fold(entries).to_json()
