"""Grants and model lists at the domain: what create_token stores, what the PDP allows an admin to mint."""

from __future__ import annotations

import pytest

from mlwarden.errors import InvalidInput
from mlwarden.identity.policy import Principal, decide_mint, parse_policy, subject_model
from mlwarden.identity.scopes import DEFAULT_GRANT, Scope
from mlwarden.identity.tokens import authenticate, create_token, list_tokens
from mlwarden.workspace import Workspace

ADMIN = Principal("token:a", "token", frozenset({Scope.ADMIN}), None, "a", frozenset({Scope.INFERENCE_READ}))


def test_empty_model_list_is_refused(workspace: Workspace) -> None:
    """create_token(models=[]) is an input error (exit 2), never an unrestricted token; nothing is stored."""
    with pytest.raises(InvalidInput, match="model list is empty") as caught:
        create_token(workspace, name="t", scopes=["inference:read"], principal="local:x", models=[])
    assert caught.value.exit_code == 2
    assert list_tokens(workspace) == []


def test_grant_is_stored_and_read_back(workspace: Workspace) -> None:
    """An explicit grant survives the row and the ledger; an admin without one gets DEFAULT_GRANT; others none."""
    token, made = create_token(
        workspace, name="t", scopes=["admin"], principal="local:x", grant=["admin", "model:promote"]
    )
    assert made.grant == (Scope.ADMIN, Scope.MODEL_PROMOTE)
    record, reason = authenticate(workspace, token)
    assert (reason, record.grant if record else None) == ("", (Scope.ADMIN, Scope.MODEL_PROMOTE))
    create_token(workspace, name="d", scopes=["admin"], principal="local:x")
    create_token(workspace, name="p", scopes=["audit:read"], principal="local:x")
    assert {t.name: t.grant for t, _problem in list_tokens(workspace)} == {"t": made.grant, "d": DEFAULT_GRANT, "p": ()}
    assert workspace.log.entry(workspace.log.size() - 3).parse().body["grant"] == ["admin", "model:promote"]


def test_grant_without_admin_is_refused(workspace: Workspace) -> None:
    """A grant on a token that cannot create tokens is an input error, not a silent no-op."""
    with pytest.raises(InvalidInput, match="needs the admin scope"):
        create_token(workspace, name="t", scopes=["audit:read"], principal="local:x", grant=["audit:read"])
    with pytest.raises(InvalidInput, match="unknown grant scope"):
        create_token(workspace, name="t", scopes=["admin"], principal="local:x", grant=["root"])


def test_default_grant_holds_no_privileged_scope() -> None:
    """Without --grant an admin can hand out nothing that changes what is served or trained on, nor admin."""
    privileged = {Scope.ADMIN, Scope.MODEL_PROMOTE, Scope.MODEL_WRITE, Scope.DATA_WRITE}
    assert not privileged & set(DEFAULT_GRANT)


@pytest.mark.parametrize(
    ("principal", "scopes", "grant", "models", "reason"),
    [
        (None, [Scope.INFERENCE_READ], [], None, "not authenticated"),
        (Principal("token:b", "token", frozenset({Scope.AUDIT_READ})), [Scope.AUDIT_READ], [], None, "missing scope"),
        (ADMIN, [Scope.AUDIT_READ], [], None, "scope audit:read is not grantable"),
        (ADMIN, [Scope.ADMIN], [], None, "scope admin is not grantable"),
        (ADMIN, [Scope.INFERENCE_READ], [Scope.AUDIT_READ], None, "grant scope audit:read is not grantable"),
    ],
)
def test_decide_mint_refuses_beyond_the_grant(
    principal: Principal | None, scopes: list[Scope], grant: list[Scope], models: list[str] | None, reason: str
) -> None:
    """The PDP names what is not grantable."""
    decision = decide_mint(principal, scopes, grant, models)
    assert not decision.allow
    assert reason in decision.reason


def test_decide_mint_holds_a_limited_admin_to_its_models() -> None:
    """A creator limited to models mints only tokens limited to some of them."""
    limited = Principal("token:a", "token", frozenset({Scope.ADMIN}), frozenset({"bc"}), "a", ADMIN.grant)
    assert decide_mint(limited, [Scope.INFERENCE_READ], [], ["bc"]).allow
    assert "every model" in decide_mint(limited, [Scope.INFERENCE_READ], [], None).reason
    assert "model other" in decide_mint(limited, [Scope.INFERENCE_READ], [], ["bc", "other"]).reason
    assert decide_mint(ADMIN, [Scope.INFERENCE_READ], [], None).allow


@pytest.mark.parametrize(
    ("subject", "model"),
    [("model:bc:1", "bc"), ("model:bc", "bc"), ("model:bc:12", "bc"), ("dataset:bc", None), ("modelbc", None),
     ("tokens", None), ("/v1/models/bc/predict", None), ("model:", "")],
)  # fmt: skip
def test_subject_model(subject: str, model: str | None) -> None:
    """The model a ledger subject belongs to; an empty name is a model no limited principal holds."""
    assert subject_model(subject) == model


def test_policy_grant_for_spiffe_admins() -> None:
    """policy.yaml may give a SPIFFE admin a grant; without one it gets DEFAULT_GRANT; without admin it is refused."""
    policy = parse_policy(
        "spiffe:\n"
        "  - {id: 'spiffe://x/issuer', scopes: [admin], grant: [inference:read]}\n"
        "  - {id: 'spiffe://x/ops', scopes: [admin]}\n"
    )
    issuer, ops = policy.principal_for("spiffe://x/issuer"), policy.principal_for("spiffe://x/ops")
    assert issuer is not None
    assert issuer.grant == {Scope.INFERENCE_READ}
    assert ops is not None
    assert ops.grant == set(DEFAULT_GRANT)
    with pytest.raises(InvalidInput, match=r"spiffe\[0\]: a grant needs the admin scope"):
        parse_policy("spiffe:\n  - {id: 'spiffe://x/s', scopes: [audit:read], grant: [audit:read]}\n")
