"""``mlwarden sinks``: check the alert sinks, see the outbox, deliver, and a local webhook receiver."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from mlwarden.cli.context import print_json, state
from mlwarden.errors import ConfigError
from mlwarden.monitor.outbox import backlog
from mlwarden.monitor.webhook_receiver import start_receiver
from mlwarden.monitor.webhook_signature import MIN_SECRET_BYTES
from mlwarden.monitor.workspace_sinks import configured_sinks, delivery_loop

app = typer.Typer(help="Alert sinks: webhook, syslog and file delivery from the durable outbox.", no_args_is_help=True)


@app.command("check")
def check(ctx: typer.Context) -> None:
    """Parse alerts.sinks in policy.yaml (secrets resolved, never shown); print the sinks as JSON."""
    ws = state(ctx).open()
    try:
        sinks = configured_sinks(ws, environ=os.environ)
    finally:
        ws.close()
    print_json({"sinks": [{"name": c.sink.name, "type": c.type, "line": c.line, **c.shown} for c in sinks]})


@app.command("status")
def status(ctx: typer.Context) -> None:
    """What waits in the outbox, per sink: pending, oldest age, failed attempts, refused rows, last error."""
    ws = state(ctx).open()
    try:
        print_json({"sinks": [b.to_json() for b in backlog(ws.engine, time.time())]})
    finally:
        ws.close()


@app.command("deliver")
def deliver(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One pass, print what it did, exit.")] = False,
    poll_seconds: Annotated[float, typer.Option("--poll-seconds", min=0.05, help="Seconds between passes.")] = 1.0,
) -> None:
    """Deliver due alerts from the outbox (the watcher does this itself; this runs it alone)."""
    ws = state(ctx).open()
    loop = delivery_loop(ws, environ=os.environ, poll_seconds=poll_seconds)
    try:
        if once:
            print_json(loop.run_once().to_json())
            return
        stop = threading.Event()
        while not stop.wait(poll_seconds):
            loop.run_once()
    finally:
        loop.stop()
        ws.close()


def _receiver_secret(secret_env: str, secret_file: Path | None) -> bytes:
    if secret_file is not None:
        try:
            secret = secret_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the secret file {secret_file}: {exc.strerror}") from exc
    else:
        if secret_env not in os.environ:
            raise ConfigError(f"environment variable {secret_env} is not set (or give --secret-file)")
        secret = os.environ[secret_env].encode()
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"the webhook secret is shorter than {MIN_SECRET_BYTES} bytes")
    return secret


@app.command("receive")
def receive(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free one).")],
    out: Annotated[Path, typer.Option("--out", help="JSON lines file the verified alerts are appended to.")],
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    secret_env: Annotated[
        str, typer.Option("--secret-env", help="Environment variable holding the shared secret.")
    ] = "MLWARDEN_WEBHOOK_SECRET",  # noqa: S107 - the variable's name, not a secret
    secret_file: Annotated[Path | None, typer.Option("--secret-file", help="File holding the shared secret.")] = None,
) -> None:
    """A local webhook receiver: verifies signatures, writes each alert once (by Idempotency-Key) to OUT."""
    secret = _receiver_secret(secret_env, secret_file)
    try:
        receiver, thread = start_receiver(host, port, secret=secret, out=out)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    typer.echo(f"listening on {receiver.url} writing {out}")
    sys.stdout.flush()
    try:
        thread.join()
    finally:
        receiver.shutdown()
        receiver.server_close()
