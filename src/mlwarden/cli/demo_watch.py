"""The demo's last acts: attacks on the gateway raise alerts that reach a webhook; the red team attacks it too.

A gateway of its own (the demo's first one limits a caller to 2 requests a second, which would
starve an extraction attempt of volume) serves the same workspace; a watcher with its delivery
loop runs beside it, as ``mlwarden serve`` runs one, and a local receiver checks each webhook's
signature before it writes the alert down.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import typer

from mlwarden.config import Settings, WorkspaceOptions

SECRET_ENV = "MLWARDEN_DEMO_WEBHOOK_SECRET"  # noqa: S105 - the name of a variable, not a secret
MODEL = "breast-cancer"


def watch_tour(root: Path, step: Callable[..., None]) -> None:
    """Steps 26–28: extraction and credential stuffing raise alerts, delivered; then a short red-team pass."""
    from mlwarden.identity.tokens import create_token
    from mlwarden.monitor.demo_attacks import demo_attacks
    from mlwarden.monitor.service import watching
    from mlwarden.monitor.webhook_receiver import start_receiver
    from mlwarden.redteam.demo import demo_redteam
    from mlwarden.redteam.home import serving
    from mlwarden.workspace import open_workspace

    settings = Settings(database_url=None, rejection_summary_seconds=1.0, gc_freeze=False)
    options = WorkspaceOptions.from_settings(settings, root / "workspace")
    ws = open_workspace(options)
    try:
        inference_token, _ = create_token(ws, name="partner-app", scopes=["inference:read"], principal="local:demo",
                                          models=[MODEL], expires="1d")  # fmt: skip
        audit_token, _ = create_token(ws, name="soc-analyst", scopes=["audit:read"], principal="local:demo",
                                      expires="1d")  # fmt: skip
    finally:
        ws.close()
    secret = secrets.token_hex(16)
    inbox = root / "webhook-inbox.jsonl"
    receiver, receiving = start_receiver("127.0.0.1", 0, secret=secret.encode(), out=inbox)
    policy = options.paths.policy
    before = policy.read_text()
    policy.write_text(
        before + "\nalerts:\n  sinks:\n"
        f"    - {{name: soc, type: webhook, url: '{receiver.url}', secret_env: {SECRET_ENV}, format: ocsf}}\n"
    )
    os.environ[SECRET_ENV] = secret
    try:
        with serving(options, settings) as url, watching(options, environ=os.environ):
            step(
                "26. an attacker sweeps the feature space and another guesses tokens; the watcher raises alerts",
                "mlwarden serve (its watcher) · mlwarden alerts list",
            )
            found = demo_attacks(url, token=inference_token, audit_token=audit_token, model=MODEL,
                                 training_csv=root / "artifacts" / "train.csv", timeout=60)  # fmt: skip
            for label, alert in (
                ("extraction", found["extraction"]),
                ("credential stuffing", found["credential_stuffing"]),
            ):
                if alert is None:
                    typer.secho(f"   {label}: no alert within 60 s", fg="red")
                else:
                    typer.secho(f"   {label}: [{alert['severity']}] {alert['rule']}: {alert['summary']}", fg="yellow")
            step("27. each alert reaches the SOC's webhook, signed (HMAC-SHA256) and as an OCSF Detection Finding",
                 "alerts: sinks: [{type: webhook, ...}] in policy.yaml · mlwarden sinks receive")  # fmt: skip
            wanted = {a["alert_id"] for a in found.values() if isinstance(a, dict)}
            _wait(lambda: wanted <= _received(inbox), timeout=30)
            for line in inbox.read_text().splitlines() if inbox.exists() else []:
                finding = json.loads(line)["alert"]
                typer.echo(f"   received {finding['finding_info']['title']!r} (class {finding['class_uid']}, "
                           f"severity {finding['severity']}), signature verified")  # fmt: skip
            step("28. the red team attacks the gateway (access and input suites)",
                 f"mlwarden redteam run --url {url} --model {MODEL} --suite access,input")  # fmt: skip
            demo_redteam(url, model=MODEL, inference_token=inference_token, audit_token=audit_token,
                         report_dir=root / "redteam", signature=root / "artifacts" / "signature.json",
                         echo=typer.echo)  # fmt: skip
    finally:
        policy.write_text(before)  # the receiver is gone: leave no sink behind (`demo --serve` keeps the workspace)
        os.environ.pop(SECRET_ENV, None)
        receiver.shutdown()
        receiver.server_close()
        receiving.join(timeout=10)


def _received(inbox: Path) -> set[str]:
    if not inbox.exists():
        return set()
    return {json.loads(line)["idempotency_key"].split("/")[0] for line in inbox.read_text().splitlines() if line}


def _wait(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
