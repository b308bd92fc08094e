"""The console in a real browser (Debian's chromium driven by Playwright) against a real ``mlwarden serve``.

Screenshots of each page go to ``artifacts/screenshots/`` (``MLWARDEN_SCREENSHOTS`` overrides it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlwarden.identity.tokens import create_token, parse_token
from mlwarden.ledger.merkle import inclusion_proof, merkle_root
from mlwarden.ledger.notes import Checkpoint, NoteSigner
from mlwarden.workspace import open_workspace
from tests.integration.test_gateway_server import Server, _free_port
from tests.support.console import ConsoleWorkspace, build_console_workspace

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real Chromium: about 40 s

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
STEP_MS = 30_000
"""Every browser wait is bounded (milliseconds)."""
SHOTS = Path(os.environ.get("MLWARDEN_SCREENSHOTS", Path(__file__).parents[2] / "artifacts" / "screenshots"))

if not CHROMIUM.exists():
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("chromium is not installed: in CI a skipped browser test is a failure", pytrace=False)
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, Route, sync_playwright  # noqa: E402 - only once chromium is known


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> ConsoleWorkspace:
    return build_console_workspace(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def base_url(setup: ConsoleWorkspace) -> Iterator[str]:
    port = _free_port()
    server = Server(setup.options.paths.home, port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=60_000)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(STEP_MS)
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, token: str) -> None:
    page.goto("/ui/signin")
    page.fill("#token", token)
    page.click("#signin")
    page.wait_for_url("**/ui/")


def proof_verdict(page: Page) -> str:
    """Wait for the in-page verifier to finish; its verdict (``verified`` or ``failed``) and message."""
    page.wait_for_selector('#proof-status:not([data-state="pending"])')
    status = page.locator("#proof-status")
    return f"{status.get_attribute('data-state')}: {status.inner_text()}"


def test_console_workflow_end_to_end(page: Page, setup: ConsoleWorkspace, base_url: str) -> None:
    """Sign in, find the production model, approve (a second person) and promote, prove a decision in the
    browser, release a quarantined batch, revoke a token."""
    with httpx.Client(base_url=base_url, timeout=15) as http:
        answer = http.post("/v1/models/bc/predict", json={"inputs": [setup.eval_row]},
                           headers={"Authorization": f"Bearer {setup.scorer}"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    decision = answer.json()["decision_ids"][0]

    page.goto("/ui/signin")
    shot(page, "signin")
    sign_in(page, setup.reviewer)
    assert page.locator("#overview-models").get_by_text("v1").is_visible()
    shot(page, "overview")
    page.click("#overview-models >> text=bc")
    page.wait_for_url("**/ui/models/bc")
    assert page.locator('.stage[data-version="1"]').inner_text() == "production"
    page.click('#versions >> text="v2"')
    page.wait_for_url("**version=2")
    page.click("#approve")
    assert "approved bc:2" in page.locator("#outcome").inner_text()
    page.go_back()
    page.click("#promote")
    assert page.locator("#outcome").inner_text() == "bc:2 is now production"
    page.goto("/ui/models/bc?version=2")
    assert page.locator('.stage[data-version="2"]').inner_text() == "production"
    shot(page, "model")

    page.click("header form.who button")
    page.wait_for_url("**/ui/signin")
    sign_in(page, setup.admin)
    page.goto("/ui/decisions")
    page.fill("#decision-id", decision)
    page.click("#lookup")
    verdict = proof_verdict(page)
    assert verdict.startswith("verified: Verified in your browser"), verdict
    shot(page, "decision")
    page.goto("/ui/ledger")
    shot(page, "ledger")
    page.click("#ledger-entries tbody tr:first-child a")
    verdict = proof_verdict(page)
    assert verdict.startswith("verified:"), verdict
    shot(page, "entry")

    page.goto("/ui/data")
    shot(page, "data")
    page.goto(f"/ui/data/batches/{setup.batch_id}")
    shot(page, "batch")
    page.fill("#release-reason", "label flips checked by hand: the source was right")
    page.click("#release")
    assert page.locator("#outcome").inner_text() == f"batch {setup.batch_id}: released"
    page.goto(f"/ui/data/batches/{setup.batch_id}")
    assert page.locator("#batch-status").inner_text() == "released"

    page.goto("/ui/tokens")
    row = page.locator("#tokens tr", has_text="retiring")
    row.locator("button", has_text="Revoke").click()
    assert "revoked" in page.locator("#outcome").inner_text()
    page.goto("/ui/tokens")
    assert page.locator("#tokens tr", has_text="retiring").locator(".state").inner_text().startswith("revoked")
    shot(page, "tokens")


WATCH_ONCE_S = 120
"""The bound on one ``mlwarden watch --once`` run (seconds)."""
DENIALS = 25
"""More policy denials than the default ``access.denied_burst`` threshold (20 in 60 s)."""


def test_alert_raised_shown_and_acknowledged(page: Page, setup: ConsoleWorkspace, base_url: str) -> None:
    """Scripted denials, the watcher run once over them: the burst alert is on the overview and the alerts
    page, and acknowledging it in the browser records the signed-in principal."""
    ws = open_workspace(setup.options)
    try:
        on_call, _ = create_token(ws, name="on-call", scopes=["audit:read", "alert:ack"], principal="local:setup")
    finally:
        ws.close()
    with httpx.Client(base_url=base_url, timeout=15) as http:
        for _ in range(DENIALS):  # an inference-only token probing the audit API: each one a recorded denial
            denied = http.get("/v1/alerts", headers={"Authorization": f"Bearer {setup.scorer}"})
            assert denied.status_code == 403, denied.text
    home = str(setup.options.paths.home)
    ran = subprocess.run([sys.executable, "-m", "mlwarden.cli", "--home", home, "watch", "--once"],
                         capture_output=True, timeout=WATCH_ONCE_S, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stderr.decode(errors="replace")[-2000:]
    scorer = f"token:{parse_token(setup.scorer).token_id}"

    sign_in(page, on_call)
    assert page.locator("#overview-alerts", has_text="access.denied_burst").count() == 1
    page.click('header nav a:has-text("Alerts")')
    page.wait_for_url("**/ui/alerts")
    row = page.locator("#alerts tr", has_text="access.denied_burst").filter(has_text=scorer).first
    assert "policy denials for" in row.locator(".summary").inner_text()
    shot(page, "alerts")
    row.locator('input[name="reason"]').fill("the scorer's probe was a scripted test")
    row.locator("button", has_text="Acknowledge").click()
    assert "acknowledged" in page.locator("#outcome").inner_text()
    page.goto("/ui/alerts?show=all")
    done = page.locator("#alerts tr", has_text="access.denied_burst").filter(has_text=scorer).first
    assert done.locator(".ack-by").inner_text() == f"token:{parse_token(on_call).token_id}"
    assert done.locator(".ack-reason").inner_text() == "the scorer's probe was a scripted test"


def test_form_without_csrf_token_is_refused(page: Page, setup: ConsoleWorkspace) -> None:
    """The approve form with its CSRF field removed gets the 403 page; nothing is approved."""
    sign_in(page, setup.admin)
    page.goto("/ui/models/bc?version=1")
    page.evaluate("document.querySelectorAll('#actions input[name=csrf]').forEach(e => e.remove())")
    page.click("#approve")
    assert page.locator("#error-status").inner_text() == "403"
    assert "CSRF" in page.locator("#error-message").inner_text()


def test_script_in_a_model_card_does_not_run(page: Page, setup: ConsoleWorkspace) -> None:
    """The candidate's card carries a script, an onerror handler and a javascript: link: none runs."""
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    sign_in(page, setup.admin)
    page.goto("/ui/models/bc?version=2")
    card = page.locator("#model-card")
    assert "window.__pwned = 1" in card.inner_text()  # shown as text
    assert card.locator("script, img").count() == 0
    assert card.locator('a[href^="javascript"]').count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert not [m for m in messages if "PWNED-BY-CARD" in m]
    shot(page, "model-card")


def test_token_without_scope_cannot_reach_the_page(page: Page, setup: ConsoleWorkspace) -> None:
    """A data-only token sees no Tokens link, and the page itself is a 403."""
    sign_in(page, setup.data_reader)
    assert page.locator("header nav a", has_text="Tokens").count() == 0
    page.goto("/ui/tokens")
    assert page.locator("#error-status").inner_text() == "403"
    assert "missing scope admin" in page.locator("#error-message").inner_text()
    shot(page, "forbidden")


def test_browser_rejects_a_changed_entry(page: Page, setup: ConsoleWorkspace) -> None:
    """The same page with one character of the entry changed on the wire: the browser says NOT verified."""

    def tamper(route: Route) -> None:
        response = route.fetch()
        body = response.text().replace('\\"kind\\":\\"', '\\"kind\\":\\"x', 1)
        assert body != response.text()
        route.fulfill(response=response, body=body)

    sign_in(page, setup.admin)
    page.route("**/ui/ledger/1", tamper)
    page.goto("/ui/ledger/1")
    verdict = proof_verdict(page)
    assert verdict.startswith("failed: NOT verified"), verdict
    assert "root" in verdict


def _bundle(entries: list[bytes], index: int, *, plus_in_key: bool) -> dict[str, object]:
    """A proof bundle as the console serves it, signed by a fresh key (one whose base64 holds a "+", if asked)."""
    while True:
        signer = NoteSigner("console.test/log", Ed25519PrivateKey.generate())
        if ("+" in signer.verifier().vkey().split("+", 2)[2]) == plus_in_key:
            break
    note = Checkpoint(signer.name, len(entries), merkle_root(entries)).sign(signer)
    path = [h.hex() for h in inclusion_proof(entries, index)]
    return {"index": index, "tree_size": len(entries), "path": path, "entry": entries[index].decode(),
            "note": note, "vkey": signer.verifier().vkey(), "fingerprint": ""}  # fmt: skip


@pytest.mark.parametrize("plus_in_key", [True, False])
def test_proof_script_reads_keys_whose_base64_holds_a_plus(page: Page, plus_in_key: bool) -> None:
    """Regression: proof.js split the verifier key at every "+", so a key whose base64 held one never verified."""
    entries = [f'{{"index":{i},"kind":"k","note":"entrée {i}"}}'.encode() for i in range(7)]
    bundle = _bundle(entries, 5, plus_in_key=plus_in_key)
    html = ('<!doctype html><p id="proof-status" data-state="pending"></p><ol id="proof-steps"></ol>'
            f'<script type="application/json" id="proof-data">{json.dumps(bundle)}</script>'
            '<script src="/ui/static/proof.js"></script>')  # fmt: skip
    page.route("**/ui/proof-vector", lambda route: route.fulfill(body=html, content_type="text/html"))
    page.goto("/ui/proof-vector")
    verdict = proof_verdict(page)
    assert verdict.startswith("verified:"), verdict


def test_screenshots_were_saved() -> None:
    """Each page has a screenshot (copied into docs/console/ for the documentation)."""
    names = {p.stem for p in SHOTS.glob("*.png")}
    assert {"signin", "overview", "model", "decision", "ledger", "entry", "data", "batch", "tokens", "alerts"} <= names
