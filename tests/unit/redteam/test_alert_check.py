"""Whether inference.extraction fired: only alerts new since the attack began count; unreadable means not checked."""

from __future__ import annotations

from collections.abc import Mapping

from mlwarden.redteam.alert_check import EXTRACTION_RULE, AlertCheck, AlertWatch
from mlwarden.redteam.target import Target, Tokens
from tests.unit.redteam.fake_gateway import FakeResponse, ScriptedClient


def _alerts(pages: list[FakeResponse]) -> Target:
    """A target whose GET /v1/alerts answers each page in turn (the last one repeats)."""

    def route(method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> FakeResponse:
        assert (method, url) == ("GET", "http://gw.test/v1/alerts")
        assert headers["Authorization"] == "Bearer audit-token"
        return pages.pop(0) if len(pages) > 1 else pages[0]

    return Target(base_url="http://gw.test", model="m", tokens=Tokens(inference="t"), client=ScriptedClient(route))


def _page(*alerts: tuple[str, str]) -> FakeResponse:
    return FakeResponse(200, {"alerts": [{"alert_id": a, "rule": r, "severity": "high"} for a, r in alerts]})


def test_a_new_extraction_alert_is_fired() -> None:
    """An alert id absent before the attack, of the extraction rule: fired."""
    old = ("alrt_old", EXTRACTION_RULE)
    watch = AlertWatch(_alerts([_page(old), _page(old, ("alrt_new", EXTRACTION_RULE))]), "audit-token")
    before = watch.snapshot()
    assert watch.fired(EXTRACTION_RULE, before, wait_seconds=0) is AlertCheck.FIRED


def test_an_old_alert_or_another_rules_alert_is_not_this_attacks() -> None:
    """The alert left over from an earlier run, and a new alert of another rule: not fired."""
    old = ("alrt_old", EXTRACTION_RULE)
    watch = AlertWatch(_alerts([_page(old), _page(old, ("alrt_other", "access.denial_burst"))]), "audit-token")
    before = watch.snapshot()
    assert watch.fired(EXTRACTION_RULE, before, wait_seconds=0) is AlertCheck.NOT_FIRED


def test_without_an_alerts_api_or_a_token_nothing_is_checked() -> None:
    """404 (no alerts API), 403 (token may not read) and no audit token: not checked, never a guess."""
    for status in (404, 403):
        watch = AlertWatch(_alerts([FakeResponse(status, {"title": "nope"})]), "audit-token")
        assert watch.fired(EXTRACTION_RULE, watch.snapshot(), wait_seconds=0) is AlertCheck.NOT_CHECKED
    no_token = AlertWatch(_alerts([_page()]), None)
    assert no_token.snapshot() is None
    assert no_token.fired(EXTRACTION_RULE, None) is AlertCheck.NOT_CHECKED
