"""The console's alerts and red-team pages, and the ledger search over the audit index.

Through the app's test client on a real SQLite workspace; alerts are raised by running the
watcher over real ledger entries, never written by the test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from markupsafe import escape
from sqlalchemy import insert
from starlette.testclient import TestClient

from mlwarden.config import WorkspaceOptions
from mlwarden.identity.tokens import create_token
from mlwarden.monitor.alert import ALERT_ACKNOWLEDGED, Severity, alert_id
from mlwarden.monitor.alerts_store import list_alerts
from mlwarden.monitor.service import workspace_watcher
from mlwarden.redteam.kinds import REDTEAM_RUN
from mlwarden.store.schema import alerts
from mlwarden.web.ledger_search import LedgerFilter, search_entries
from mlwarden.workspace import open_workspace
from tests.unit.web.test_console_routes import _client, _principal, built, options, sign_in

__all__ = ["built", "options"]  # the shared fixtures
HOSTILE_PRINCIPAL = '<img src=x onerror="alert(1)">'
HOSTILE_SUBJECT = "token:<script>alert(2)</script>"


def _raise_alerts(options: WorkspaceOptions) -> dict[str, str]:
    """An admin token minted by a principal whose name is HTML, then the watcher run once over the ledger."""
    ws = open_workspace(options)
    try:
        ws.log.append(kind="token.created", subject=HOSTILE_SUBJECT, principal=HOSTILE_PRINCIPAL,
                      body={"scopes": ["admin"]})  # fmt: skip
        watcher = workspace_watcher(ws)
        for _ in range(1000):
            if watcher.tick() == 0:
                break
        acker, _ = create_token(ws, name="on-call", scopes=["audit:read", "alert:ack"], principal="local:setup")
        reader, _ = create_token(ws, name="auditor", scopes=["audit:read"], principal="local:setup")
        listed = list_alerts(ws)
        hostile = next(a.alert.alert_id for a in listed if a.alert.subject == HOSTILE_SUBJECT)
        return {"acker": acker, "reader": reader, "hostile": hostile}
    finally:
        ws.close()


@pytest.fixture
def raised(options: WorkspaceOptions) -> dict[str, str]:
    return _raise_alerts(options)


@pytest.fixture
def client(options: WorkspaceOptions, raised: dict[str, str]) -> Iterator[TestClient]:
    with _client(options) as c:
        yield c


def _csrf(text: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    assert found is not None
    return found.group(1)


def test_alerts_page_lists_backed_alerts_escaped(client: TestClient, raised: dict[str, str]) -> None:
    """The hostile principal and subject show as text, never markup; evidence links go to entry pages."""
    sign_in(client, raised["reader"])
    page = client.get("/ui/alerts")
    assert page.status_code == 200
    assert raised["hostile"] in page.text
    assert HOSTILE_PRINCIPAL not in page.text
    assert HOSTILE_SUBJECT not in page.text
    assert str(escape(HOSTILE_PRINCIPAL)) in page.text
    assert str(escape(HOSTILE_SUBJECT)) in page.text
    row = page.text.split(f'data-alert="{raised["hostile"]}"', 1)[1].split("</tr>", 1)[0]
    assert re.search(r'href="/ui/ledger/\d+"', row)
    assert "governance.event" in row
    assert 'action="/ui/alerts/' not in page.text  # audit:read alone: no acknowledge form
    overview = client.get("/ui/")
    assert raised["hostile"] not in overview.text  # the overview shows rules and summaries, not ids
    assert 'id="overview-alerts"' in overview.text
    assert "governance.event" in overview.text
    assert HOSTILE_PRINCIPAL not in overview.text


def test_ack_needs_scope_and_csrf_and_records_the_signed_in_principal(
    client: TestClient, options: WorkspaceOptions, raised: dict[str, str]
) -> None:
    target = raised["hostile"]
    csrf = sign_in(client, raised["reader"])
    refused = client.post(f"/ui/alerts/{target}/ack", data={"csrf": csrf, "reason": "hush"})
    assert refused.status_code == 403  # audit:read cannot silence an alert
    client.post("/ui/signout", data={"csrf": csrf})
    csrf = sign_in(client, raised["acker"])
    page = client.get("/ui/alerts")
    assert f'action="/ui/alerts/{target}/ack"' in page.text
    missing = client.post(f"/ui/alerts/{target}/ack", data={"reason": "no token"})
    wrong = client.post(f"/ui/alerts/{target}/ack", data={"csrf": "x" * 43, "reason": "wrong token"})
    assert (missing.status_code, wrong.status_code) == (403, 403)
    empty = client.post(f"/ui/alerts/{target}/ack", data={"csrf": csrf, "reason": "  "})
    bad_id = client.post("/ui/alerts/alrt_nothex/ack", data={"csrf": csrf, "reason": "x"})
    unknown = client.post(f"/ui/alerts/alrt_{'0' * 32}/ack", data={"csrf": csrf, "reason": "x"})
    assert (empty.status_code, bad_id.status_code, unknown.status_code) == (400, 404, 404)
    assert "Traceback" not in empty.text + bad_id.text + unknown.text
    ws = open_workspace(options)
    try:
        assert not list(ws.log.find(ALERT_ACKNOWLEDGED, "alert:", limit=10))  # nothing refused was recorded
    finally:
        ws.close()
    done = client.post(f"/ui/alerts/{target}/ack", data={"csrf": csrf, "reason": "expected <b>onboarding</b>"})
    assert done.status_code == 200, done.text
    ws = open_workspace(options)
    try:
        acks = [e.parse() for e in ws.log.find(ALERT_ACKNOWLEDGED, f"alert:{target}", limit=10)]
    finally:
        ws.close()
    assert [(e.principal, e.body["reason"]) for e in acks] == [
        (_principal(raised["acker"]), "expected <b>onboarding</b>")
    ]
    open_now = client.get("/ui/alerts").text
    assert f'data-alert="{target}"' not in open_now
    everything = client.get("/ui/alerts?show=all").text
    row = everything.split(f'data-alert="{target}"', 1)[1].split("</tr>", 1)[0]
    assert _principal(raised["acker"]) in row
    assert "expected &lt;b&gt;onboarding&lt;/b&gt;" in row
    again = client.post(f"/ui/alerts/{target}/ack", data={"csrf": csrf, "reason": "twice"})
    assert again.status_code == 400


def test_a_forged_alerts_row_is_not_shown(
    client: TestClient, options: WorkspaceOptions, raised: dict[str, str]
) -> None:
    forged = alert_id("ledger.integrity", 0, 0, "forged")
    ws = open_workspace(options)
    try:
        with ws.engine.begin() as conn:
            conn.execute(insert(alerts).values(
                alert_id=forged, rule="ledger.integrity", severity=Severity.CRITICAL.value, principal="mallory",
                subject="model:bc", first_index=0, last_index=0, summary="FORGED-SUMMARY",
                time="2026-01-01T00:00:00.000000Z", entry_index=0,
            ))  # fmt: skip
    finally:
        ws.close()
    csrf = sign_in(client, raised["acker"])
    for path in ("/ui/alerts", "/ui/alerts?show=all", "/ui/"):
        text = client.get(path).text
        assert forged not in text, path
        assert "FORGED-SUMMARY" not in text, path
    assert raised["hostile"] in client.get("/ui/alerts").text  # the real ones still are
    refused = client.post(f"/ui/alerts/{forged}/ack", data={"csrf": csrf, "reason": "silence it"})
    assert refused.status_code == 404


def test_a_reader_without_audit_scope_sees_no_alerts(client: TestClient, built: object) -> None:
    sign_in(client, built.data_reader)  # type: ignore[attr-defined]
    assert client.get("/ui/alerts").status_code == 403
    assert client.get("/ui/redteam").status_code == 403
    overview = client.get("/ui/")
    assert 'id="overview-alerts"' not in overview.text
    assert 'href="/ui/alerts"' not in overview.text


def test_redteam_page_shows_recorded_runs(
    client: TestClient, options: WorkspaceOptions, raised: dict[str, str]
) -> None:
    ws = open_workspace(options)
    try:
        body = {"model": "bc", "version": 1, "sha256": "ab" * 32, "suites": ["evasion", "<i>input</i>"],
                "findings": {"high": 2, "low": 1}, "verdict": "fail", "report_digest": "sha256:" + "cd" * 32,
                "source": "home"}  # fmt: skip
        index = ws.log.append(kind=REDTEAM_RUN, subject="model:bc:1", principal="local:ci", body=body).index
    finally:
        ws.close()
    sign_in(client, raised["reader"])
    page = client.get("/ui/redteam")
    assert page.status_code == 200
    table = page.text.split('data-model="bc"', 1)[1].split("</table>", 1)[0]
    assert f'href="/ui/ledger/{index}"' in table
    for shown in ("v1", "abababababababab", "high 2", "low 1", "fail", "sha256:cdcdcdcd", "local:ci"):
        assert shown in table, shown
    assert "<i>input</i>" not in table
    assert "&lt;i&gt;input&lt;/i&gt;" in table


def test_ledger_search_uses_audit_filters(options: WorkspaceOptions, raised: dict[str, str]) -> None:
    """Principal, status, decision and time filters: only matching entries, newest first, pages without overlap."""
    ws = open_workspace(options)
    try:
        for i in range(7):
            ws.log.append(kind="request.rejected", subject="route:/v1/predict", principal="token:probe",
                          body={"status": 403 if i % 2 else 422, "reason": "x", "method": "POST",
                                "path": "/v1/predict"})  # fmt: skip
        size = ws.log.size()
        by_principal = search_entries(ws, LedgerFilter(principal=HOSTILE_PRINCIPAL))
        assert [r.subject for r in by_principal.rows] == [HOSTILE_SUBJECT]
        seen: list[int] = []
        f = LedgerFilter(principal="token:probe", limit=2)
        while True:
            page = search_entries(ws, f)
            seen += [r.index for r in page.rows]
            if page.next_before is None:
                break
            f = LedgerFilter(principal="token:probe", limit=2, before=page.next_before)
        assert seen == list(range(size - 1, size - 8, -1))
        forbidden = search_entries(ws, LedgerFilter(status="403", principal="token:probe"))
        assert [r.index for r in forbidden.rows] == [size - 2, size - 4, size - 6]
        last_time = ws.log.entry(size - 1).parse().time
        recent = search_entries(ws, LedgerFilter(since=last_time))
        assert [r.index for r in recent.rows] == [i for i in range(size - 1, -1, -1)
                                                   if ws.log.entry(i).parse().time >= last_time]  # fmt: skip
        before_last = search_entries(ws, LedgerFilter(until=last_time, principal="token:probe"))
        assert all(ws.log.entry(r.index).parse().time < last_time for r in before_last.rows)
        assert search_entries(ws, LedgerFilter(since="2999-01-01")).rows == []
    finally:
        ws.close()


def test_ledger_page_rejects_bad_filters_with_a_page(client: TestClient, raised: dict[str, str]) -> None:
    sign_in(client, raised["reader"])
    for query in ("status=abc", "status=9999", "since=yesterday-ish", "since=2026-11-27&until=2026-11-26",
                  "decision_id=" + "%3C" * 3):  # fmt: skip
        response = client.get(f"/ui/ledger?{query}")
        assert response.status_code == 400, query
        assert response.headers["content-type"].startswith("text/html")
        assert "Traceback" not in response.text
    ok = client.get("/ui/ledger?status=403&since=7d")
    assert ok.status_code == 200
