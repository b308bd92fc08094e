"""The console's routes through the app's test client: sign-in and cookies, CSRF, headers, escaping, scopes."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from mlwarden.api.app import create_app
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.tokens import create_token, parse_token
from mlwarden.store.schema import console_sessions
from mlwarden.subjects.erasure import erase_data_subject
from mlwarden.web.ledger_search import LedgerFilter, search_entries
from mlwarden.workspace import open_workspace
from tests.support.console import ConsoleWorkspace, build_console_workspace

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> ConsoleWorkspace:
    return build_console_workspace(tmp_path_factory.mktemp("console"))


@pytest.fixture
def options(built: ConsoleWorkspace, tmp_path: Path) -> WorkspaceOptions:
    """A private copy of the built workspace (tests change it)."""
    home = tmp_path / "ws"
    shutil.copytree(built.options.paths.home, home)
    return WorkspaceOptions.from_settings(Settings(database_url=None), home)


def _client(options: WorkspaceOptions, base_url: str = "http://testserver") -> TestClient:
    settings = Settings(database_url=None, rate_limit=0, gc_freeze=False)
    return TestClient(create_app(options, settings), base_url=base_url, follow_redirects=False)


@pytest.fixture
def client(options: WorkspaceOptions) -> Iterator[TestClient]:
    with _client(options) as c:
        yield c


def sign_in(client: TestClient, token: str) -> str:
    """Sign in with ``token``; returns the CSRF token of the session's forms."""
    form = client.get("/ui/signin")
    csrf = CSRF.search(form.text)
    assert csrf is not None
    done = client.post("/ui/signin", data={"csrf": csrf.group(1), "token": token})
    assert done.status_code == 303, done.text
    page = client.get("/ui/")
    assert page.status_code == 200
    found = CSRF.search(page.text)
    assert found is not None
    return found.group(1)


def _kinds(options: WorkspaceOptions, kind: str) -> list[tuple[str, str]]:
    ws = open_workspace(options)
    try:
        return [(e.parse().principal, e.parse().subject) for e in ws.log.find(kind, "", limit=1000)]
    finally:
        ws.close()


def _principal(token: str) -> str:
    return f"token:{parse_token(token).token_id}"


def test_signed_out_visitor_is_sent_to_sign_in(client: TestClient) -> None:
    """Every page but sign-in redirects an unauthenticated visitor, and nothing of the page leaks."""
    for path in ("/ui/", "/ui/models/bc", "/ui/ledger", "/ui/tokens", "/ui/data"):
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/signin"


def test_session_cookie_is_httponly_strict_and_expiring(client: TestClient, built: ConsoleWorkspace) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, path /ui, a max-age; not Secure over plain HTTP."""
    form = client.get("/ui/signin")
    csrf = CSRF.search(form.text)
    assert csrf is not None
    response = client.post("/ui/signin", data={"csrf": csrf.group(1), "token": built.admin})
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "mlwarden_console=" in v)
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/ui" in cookie
    assert "Max-Age=28800" in cookie
    assert "Secure" not in cookie
    assert built.admin not in cookie  # the cookie is a random id, never the token


def test_session_cookie_is_secure_under_tls(options: WorkspaceOptions, built: ConsoleWorkspace) -> None:
    """Under TLS the session cookie also carries Secure."""
    with _client(options, "https://testserver") as client:
        csrf = CSRF.search(client.get("/ui/signin").text)
        assert csrf is not None
        response = client.post("/ui/signin", data={"csrf": csrf.group(1), "token": built.admin})
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "mlwarden_console=" in v)
    assert "Secure" in cookie


def test_sign_in_without_its_csrf_token_is_refused(client: TestClient, built: ConsoleWorkspace) -> None:
    """A sign-in form posted without the double-submit token gets the 403 page and no session."""
    client.get("/ui/signin")
    response = client.post("/ui/signin", data={"token": built.admin})
    assert response.status_code == 403
    assert "CSRF" in response.text
    assert "mlwarden_console=" not in response.headers.get("set-cookie", "")


def test_wrong_token_is_refused_with_a_page(client: TestClient) -> None:
    """A bad token: 401 on the sign-in page, no session cookie."""
    csrf = CSRF.search(client.get("/ui/signin").text)
    assert csrf is not None
    response = client.post("/ui/signin", data={"csrf": csrf.group(1), "token": "mlw_0123456789abcdef_nope"})
    assert response.status_code == 401
    assert "sign-in refused" in response.text
    assert "mlwarden_console=" not in response.headers.get("set-cookie", "")


def test_pages_carry_a_strict_content_security_policy(client: TestClient, built: ConsoleWorkspace) -> None:
    """No inline script allowed, no framing, nothing from another origin; the pages hold no inline script."""
    sign_in(client, built.admin)
    for path in ("/ui/", "/ui/models/bc", "/ui/ledger", "/ui/signin", "/ui/nowhere-page"):
        response = client.get(path)
        csp = response.headers["content-security-policy"]
        assert "unsafe-inline" not in csp
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        scripts = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", response.text)
        assert scripts == [], path


def test_approve_without_csrf_token_is_refused_and_not_recorded(
    client: TestClient, built: ConsoleWorkspace, options: WorkspaceOptions
) -> None:
    """A POST without (or with a wrong) CSRF token changes nothing: 403 page, no approval entry."""
    csrf = sign_in(client, built.reviewer)
    for data in ({}, {"csrf": csrf[:-2] + "00"}):
        response = client.post("/ui/models/bc/2/approve", data=data)
        assert response.status_code == 403
    assert [p for p, s in _kinds(options, "model.approved") if s == "model:bc:2"] == []
    done = client.post("/ui/models/bc/2/approve", data={"csrf": csrf, "comment": "looks fine"})
    assert done.status_code == 200
    assert (_principal(built.reviewer), "model:bc:2") in _kinds(options, "model.approved")


def test_promotion_from_the_console_is_the_gated_workflow(
    client: TestClient, built: ConsoleWorkspace, options: WorkspaceOptions
) -> None:
    """Approve as a second person, then promote: the gates run and the promotion names the signed-in principal."""
    csrf = sign_in(client, built.reviewer)
    client.post("/ui/models/bc/2/approve", data={"csrf": csrf})
    response = client.post("/ui/models/bc/2/promote", data={"csrf": csrf, "stage": "production"})
    assert response.status_code == 200, response.text
    assert "bc:2 is now production" in response.text
    assert (_principal(built.reviewer), "model:bc:2") in _kinds(options, "model.promoted")
    assert (_principal(built.reviewer), "model:bc:2") in _kinds(options, "gate.run")


def test_hostile_model_card_is_shown_as_text(client: TestClient, built: ConsoleWorkspace) -> None:
    """Script, event handler and javascript: link in a card are inert; safe Markdown still renders."""
    sign_in(client, built.admin)
    page = client.get("/ui/models/bc?version=2").text
    card = page[page.index('id="model-card"') :]
    card = card[: card.index("</section>")]
    assert "<script" not in card
    assert "<img" not in card
    assert 'href="javascript:' not in card
    assert "&lt;script&gt;" in card  # shown, as text
    assert "<strong>bold</strong>" in card
    assert 'href="https://example.org/card"' in card


def test_ledger_values_are_escaped(client: TestClient, built: ConsoleWorkspace, options: WorkspaceOptions) -> None:
    """An entry whose subject and body hold HTML shows them as text in the list and on its page."""
    ws = open_workspace(options)
    try:
        index = ws.log.append(kind="external.note", subject="<b id=x>hi</b>", principal="<i>me</i>",
                              body={"html": "<img src=x onerror=alert(1)>"}).index  # fmt: skip
    finally:
        ws.close()
    sign_in(client, built.admin)
    listing = client.get("/ui/ledger", params={"kind": "external.note"}).text
    assert "&lt;b id=x&gt;hi&lt;/b&gt;" in listing
    assert "<b id=x>" not in listing
    entry = client.get(f"/ui/ledger/{index}").text
    assert "<img src=x" not in entry
    assert "<i>me</i>" not in entry


def test_a_missing_scope_gets_the_403_page_and_is_recorded(
    client: TestClient, built: ConsoleWorkspace, options: WorkspaceOptions
) -> None:
    """A data-only token: tokens, models and the ledger are 403 pages (recorded denials); data is open."""
    csrf = sign_in(client, built.data_reader)
    for path in ("/ui/tokens", "/ui/models/bc", "/ui/ledger"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "missing scope" in response.text
    assert client.post("/ui/models/bc/2/approve", data={"csrf": csrf}).status_code == 403
    assert (
        client.post(f"/ui/data/batches/{built.batch_id}/release", data={"csrf": csrf, "reason": "x"}).status_code == 403
    )
    assert client.get("/ui/data").status_code == 200
    denied = [s for p, s in _kinds(options, "access.denied") if p == _principal(built.data_reader)]
    assert {"tokens", "model:bc", "ledger", "model:bc:2", f"batch:{built.batch_id}"} <= set(denied)
    nav = client.get("/ui/").text
    assert 'href="/ui/tokens"' not in nav
    assert 'href="/ui/data"' in nav


def test_revoked_token_ends_its_session(client: TestClient, built: ConsoleWorkspace, options: WorkspaceOptions) -> None:
    """Revoking the token behind a session sends its next page to sign-in (the token is re-checked)."""
    admin = _client(options)
    with admin:
        csrf = sign_in(admin, built.admin)
        sign_in(client, built.reviewer)
        assert client.get("/ui/models").status_code == 200
        token_id = parse_token(built.reviewer).token_id
        assert admin.post(f"/ui/tokens/{token_id}/revoke", data={"csrf": csrf}).status_code == 200
        client.app.state.gateway._tokens.clear()  # type: ignore[attr-defined]  # the 1 s auth cache, not waited out
        response = client.get("/ui/models")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/signin"


def test_a_session_row_edited_in_the_database_opens_nothing(
    client: TestClient, built: ConsoleWorkspace, options: WorkspaceOptions
) -> None:
    """Flipping one byte of the sealed credential (or its keyed id) ends the session: the DB is not trusted."""
    sign_in(client, built.admin)
    ws = open_workspace(options)
    try:
        with ws.engine.begin() as conn:
            row = conn.execute(select(console_sessions)).one()
            sealed = bytearray(row.sealed)
            sealed[-1] ^= 1
            conn.execute(update(console_sessions).values(sealed=bytes(sealed), expires="9999-01-01T00:00:00+00:00"))
    finally:
        ws.close()
    assert client.get("/ui/").status_code == 303


def test_sign_out_ends_the_session_server_side(client: TestClient, built: ConsoleWorkspace) -> None:
    """After sign-out the old cookie opens nothing, even if replayed."""
    csrf = sign_in(client, built.admin)
    cookie = client.cookies.get("mlwarden_console")
    assert cookie
    assert client.post("/ui/signout", data={"csrf": csrf}).status_code == 303
    client.cookies.set("mlwarden_console", cookie, path="/ui")
    assert client.get("/ui/").status_code == 303


def test_token_secret_is_shown_once(client: TestClient, built: ConsoleWorkspace) -> None:
    """Creating a token shows its secret on that answer only; the list never shows one."""
    csrf = sign_in(client, built.admin)
    created = client.post("/ui/tokens", data={"csrf": csrf, "name": "new-one", "scopes": ["audit:read"]})
    assert created.status_code == 200, created.text
    secret = re.search(r'id="new-token">(mlw_[0-9a-f]{16}_[^<]+)<', created.text)
    assert secret is not None
    assert secret.group(1) not in client.get("/ui/tokens").text
    refused = client.post("/ui/tokens", data={"csrf": csrf, "name": "too-much", "scopes": ["admin"]})
    assert refused.status_code == 403


def test_quarantined_batch_release_and_reject(
    client: TestClient, built: ConsoleWorkspace, options: WorkspaceOptions
) -> None:
    """Release records the signed-in principal; a released batch cannot then be rejected."""
    csrf = sign_in(client, built.admin)
    page = client.get(f"/ui/data/batches/{built.batch_id}").text
    assert "quarantined" in page
    done = client.post(f"/ui/data/batches/{built.batch_id}/release", data={"csrf": csrf, "reason": "checked by hand"})
    assert done.status_code == 200, done.text
    assert (_principal(built.admin), "dataset:breast-cancer-train") in _kinds(options, "data.batch_released")
    again = client.post(f"/ui/data/batches/{built.batch_id}/reject", data={"csrf": csrf, "reason": "no"})
    assert again.status_code == 400


def test_static_files_are_only_the_vendored_ones(client: TestClient) -> None:
    """Known files are served with their type; anything else (a path, a module) is a 404 page."""
    assert client.get("/ui/static/proof.js").headers["content-type"].startswith("text/javascript")
    for name in ("..%2Fsessions.py", "sessions.py", "templates"):
        assert client.get(f"/ui/static/{name}").status_code == 404


def test_ledger_search_pages_by_index_without_overlap(options: WorkspaceOptions) -> None:
    """Keyset pages: newest first, each page strictly below the last, a kind filter keeps only that kind."""
    ws = open_workspace(options)
    try:
        seen: list[int] = []
        f = LedgerFilter(limit=3)
        while True:
            page = search_entries(ws, f)
            seen += [r.index for r in page.rows]
            if page.next_before is None:
                break
            f = LedgerFilter(limit=3, before=page.next_before)
        assert seen == list(range(ws.log.size() - 1, -1, -1))
        kinds = search_entries(ws, LedgerFilter(kind="model.registered"))
        assert [r.kind for r in kinds.rows] == ["model.registered", "model.registered"]
        by_principal = search_entries(ws, LedgerFilter(principal="alice"))
        assert by_principal.rows
        assert {r.principal for r in by_principal.rows} == {"alice"}
    finally:
        ws.close()


def test_bad_input_and_unknown_pages_are_pages_not_errors(client: TestClient, built: ConsoleWorkspace) -> None:
    """A malformed query, an unknown model, an oversized filter and an unknown path: 4xx pages with a sentence."""
    sign_in(client, built.admin)
    cases = {
        "/ui/models/bc?version=abc": 400,
        "/ui/models/nope": 404,
        "/ui/ledger?kind=" + "k" * 600: 400,
        "/ui/ledger/99999999": 404,
        "/ui/decisions?id=not-a-decision": 404,
        "/ui/no/such/page": 404,
    }
    for path, status in cases.items():
        response = client.get(path)
        assert response.status_code == status, (path, response.text[:300])
        assert response.headers["content-type"].startswith("text/html")
        assert 'id="error-message"' in response.text
        assert "Traceback" not in response.text


def test_model_restricted_auditor_sees_only_its_models(
    client: TestClient, built: ConsoleWorkspace, options: WorkspaceOptions
) -> None:
    """An audit:read token limited to another model: bc's page is a 403, and the ledger lists no bc entry."""
    ws = open_workspace(options)
    try:
        token, _ = create_token(
            ws, name="other-auditor", scopes=["audit:read"], principal="local:setup", models=["other"]
        )
    finally:
        ws.close()
    sign_in(client, token)
    assert client.get("/ui/models/bc").status_code == 403
    listing = client.get("/ui/ledger").text
    assert "model:bc" not in listing
    assert 'href="/ui/ledger/' in listing  # entries of no model (tokens, datasets) are still listed
    assert "bc" not in client.get("/ui/models").text.split("<main>")[1]


def test_gate_run_charts_show_groups_and_production(
    client: TestClient, built: ConsoleWorkspace, options: WorkspaceOptions
) -> None:
    """A gate run's fairness rates per group and its metric against production are drawn as bars."""
    fairness = {"gate": "fairness", "status": "fail", "message": "dpd 0.4", "measured": {}, "thresholds": {},
                "evidence": {"evaluation": "ab" * 32},
                "details": {"by_group": {"0": {"selection_rate": 0.2}, "1": {"selection_rate": 0.9}}}}  # fmt: skip
    performance = {"gate": "performance", "status": "pass", "message": "ok", "measured": {"accuracy": 0.91},
                   "thresholds": {}, "evidence": {}, "details": {"production": {"accuracy": 0.88}}}  # fmt: skip
    ws = open_workspace(options)
    try:
        ws.log.append(kind="gate.run", subject="model:bc:2", principal="local:ci",
                      body={"stage": "production", "passed": False, "results": [fairness, performance]})  # fmt: skip
    finally:
        ws.close()
    sign_in(client, built.admin)
    page = client.get("/ui/models/bc?version=2").text
    bars = re.findall(r'<text x="0" y="\d+" class="bar-label">([^<]+)</text>', page)
    assert bars == [
        "group 0: selection_rate",
        "group 1: selection_rate",
        "accuracy (candidate)",
        "accuracy (production)",
    ]
    widths = [float(w) for w in re.findall(r'<rect x="230" y="\d+" width="([\d.]+)"', page)]
    assert widths[0] < widths[1]  # 0.2 against 0.9, on one scale
    assert widths[2] > widths[3]  # 0.91 against 0.88


def test_erased_inputs_show_as_erased(client: TestClient, built: ConsoleWorkspace, options: WorkspaceOptions) -> None:
    """A decision whose data subject was erased: its inputs read "erased", the proof still stands."""
    answer = client.post("/v1/models/bc/predict", json={"inputs": [built.eval_row], "subjects": ["patient-7"]},
                         headers={"Authorization": f"Bearer {built.scorer}"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    decision = answer.json()["decision_ids"][0]
    sign_in(client, built.admin)
    before = client.get("/ui/decisions", params={"id": decision}).text
    assert 'id="decision-inputs"' in before
    assert 'id="inputs-erased"' not in before
    ws = open_workspace(options)
    try:
        erase_data_subject(ws, "patient-7", reason="right to erasure", principal="local:dpo")
    finally:
        ws.close()
    after = client.get("/ui/decisions", params={"id": decision}).text
    assert 'id="inputs-erased"' in after
    assert 'id="proof-data"' in after


def test_mtls_identity_signs_in_and_must_stay_on_the_connection(
    built: ConsoleWorkspace, options: WorkspaceOptions
) -> None:
    """A verified client certificate signs in by its SPIFFE ID; the session opens nothing on another connection."""
    spiffe = "spiffe://example.org/ns/audit/sa/reviewer"
    options.paths.policy.write_text(f"spiffe:\n  - id: {spiffe}\n    scopes: [audit:read]\n")
    settings = Settings(database_url=None, rate_limit=0, gc_freeze=False)
    app = create_app(options, settings)
    presented = {"id": spiffe}

    async def with_certificate(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and presented["id"]:
            scope = {**scope, "extensions": {**scope.get("extensions", {}), "mlwarden.spiffe_id": presented["id"]}}
        await app(scope, receive, send)

    with TestClient(with_certificate, follow_redirects=False) as client:
        form = client.get("/ui/signin").text
        assert f"Continue as {spiffe}" in form
        csrf = CSRF.search(form)
        assert csrf is not None
        assert client.post("/ui/signin", data={"csrf": csrf.group(1), "mtls": "1"}).status_code == 303
        assert client.get("/ui/models").status_code == 200
        presented["id"] = "spiffe://example.org/ns/other/sa/someone"
        assert client.get("/ui/models").status_code == 303
        presented["id"] = ""
        assert client.get("/ui/models").status_code == 303
