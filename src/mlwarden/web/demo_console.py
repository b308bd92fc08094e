"""The demo's last step: a token for the console, its URL, and (``mlwarden demo --serve``) a gateway that stays up."""

from __future__ import annotations

import typer

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.tokens import create_token
from mlwarden.workspace import open_workspace

CONSOLE_SCOPES = ["admin", "audit:read", "model:promote", "data:read", "data:write", "feedback:write"]


def console_token(options: WorkspaceOptions) -> str:
    """A token for a person at the console: every reading scope, promotion, data release and admin (1 day)."""
    ws = open_workspace(options)
    try:
        token, _ = create_token(ws, name="console-demo", scopes=CONSOLE_SCOPES, principal="local:demo", expires="1d")
    finally:
        ws.close()
    return token


def announce(url: str, token: str, *, serving: bool) -> None:
    typer.secho("\n== the console", bold=True)
    typer.echo(f"   {url}")
    typer.echo(f"   sign in with this token (shown once): {token}")
    if not serving:
        typer.echo("   this demo's gateway has stopped: `mlwarden demo --serve` runs the tour and keeps the console up")


def serve_console(options: WorkspaceOptions, port: int) -> None:
    """Serve the demo workspace (gateway and console) in the foreground until Ctrl-C."""
    import uvicorn

    from mlwarden.api.app import create_app

    settings = Settings(database_url=None, gc_freeze=False)
    token = console_token(options)
    announce(f"http://127.0.0.1:{port}/ui/", token, serving=True)
    typer.echo("   Ctrl-C stops it")
    uvicorn.run(create_app(options, settings), host="127.0.0.1", port=port, log_level="warning")
