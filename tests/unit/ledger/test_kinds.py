"""User records live in external.*: user kinds are namespaced, system kinds refused; the system never writes them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlwarden.errors import InvalidInput
from mlwarden.ledger.kinds import user_kind

SRC = Path(__file__).resolve().parents[3] / "src" / "mlwarden"


@pytest.mark.parametrize(
    ("given", "recorded"),
    [
        ("deploy", "external.deploy"),
        ("review.approved", "external.review.approved"),
        ("external.deploy", "external.deploy"),
    ],
)
def test_user_kinds_are_written_under_external(given: str, recorded: str) -> None:
    """A plain kind is recorded as external.<kind>; an external.* kind is kept as it is."""
    assert user_kind(given) == recorded


@pytest.mark.parametrize(
    "kind",
    [
        "model.promoted",
        "model.rolled_back",
        "token.created",
        "token.revoked",
        "gate.run",
        "feedback",
        "prediction",
        "access.allowed",
        "data.batch_released",
        "dataset.registered",
        "external",
        "external.",
    ],
)
def test_system_kinds_are_refused(kind: str) -> None:
    """A kind in a system namespace (or a bare external) is bad input, naming what to use instead."""
    with pytest.raises(InvalidInput, match=r"external"):
        user_kind(kind)


def test_the_system_never_writes_the_user_namespace() -> None:
    """No module but the user-record paths (kinds, `ledger record`, the demo's sample records) names external.*."""
    allowed = {SRC / "ledger" / "kinds.py", SRC / "cli" / "ledger.py", SRC / "cli" / "demo.py"}
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path not in allowed and re.search(r"[\"']external\.", path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
