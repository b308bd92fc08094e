"""``mlwarden alerts``: list and acknowledge the watcher's alerts; check the rules file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlwarden.cli.context import print_json, state
from mlwarden.cli.watch import logs_to_stderr
from mlwarden.monitor.alerts_store import acknowledge, list_alerts
from mlwarden.monitor.rules_file import load_rules
from mlwarden.workspace import local_principal

app = typer.Typer(help="Alerts raised by the ledger watcher: list, acknowledge, check the rules.", no_args_is_help=True)


@app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document instead of a table.")] = False,
    open_only: Annotated[bool, typer.Option("--open", help="Only alerts not acknowledged yet.")] = False,
) -> None:
    """Every alert the ledger backs, newest first."""
    logs_to_stderr()  # a row the ledger does not back is logged, never mixed into the listing
    ws = state(ctx).open()
    try:
        found = list_alerts(ws, open_only=open_only)
    finally:
        ws.close()
    if as_json:
        print_json({"alerts": [a.to_dict() for a in found]})
        return
    if not found:
        typer.echo("no alerts")
        return
    for item in found:
        a = item.alert
        status = "open" if item.ack is None else f"acked by {item.ack.by}"
        typer.echo(f"{a.alert_id}  {a.time}  {a.severity.value:<8}  {a.rule:<22}  {status:<20}  {a.summary}")


@app.command("ack")
def ack_command(
    ctx: typer.Context,
    alert_id: Annotated[str, typer.Argument(help="The alert id (alrt_…).")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is acknowledged (recorded in the ledger).")],
) -> None:
    """Acknowledge an alert: an ``alert.acknowledged`` entry by the OS account running this command."""
    ws = state(ctx).open()
    try:
        print_json(acknowledge(ws, alert_id, principal=local_principal(), reason=reason).to_dict())
    finally:
        ws.close()


@app.command("check")
def check_command(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Option("--file", help="A policy file to check (default: the workspace's policy.yaml).")
    ] = None,
) -> None:
    """Parse the ``alerts:`` section; a bad rule is an error naming its line."""
    path = file or state(ctx).options().paths.policy
    config = load_rules(path)
    enabled = [rule for rule, settings in config.builtin.items() if settings.enabled]
    print_json({"file": str(path), "builtin": enabled, "custom": [spec.rule_id for spec, _s in config.custom]})
