"""``mlwarden demo``: the end-to-end tour in a fresh temporary workspace."""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.ledger.entry import PreparedEntry
from mlwarden.workspace import init_workspace, open_workspace

KINDS = ("prediction", "access.denied", "review.approved", "token.created")


def _step(title: str) -> None:
    typer.secho(f"\n== {title}", bold=True)


def demo(
    entries: Annotated[int, typer.Option("--entries", min=1, max=100_000, help="Sample decisions to record.")] = 300,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary workspace.")] = False,
) -> None:
    """Record sample decisions, checkpoint, prove, verify, then tamper with a copy and catch it."""
    root = Path(tempfile.mkdtemp(prefix="mlwarden-demo-"))
    try:
        _tour(root, entries)
        if keep:
            typer.echo(f"\nworkspace kept at {root}")
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _tour(root: Path, count: int) -> None:
    options = WorkspaceOptions.from_settings(Settings(database_url=None), root / "workspace")
    _step(f"1. a fresh workspace at {options.paths.home}")
    info = init_workspace(options)
    typer.echo(f"   ledger origin {info['ledger_origin']}, signing key {info['signing_key']}")

    ws = open_workspace(options)
    try:
        _step(f"2. recording {count} sample decisions (one durable group-committed transaction)")
        batch = [
            PreparedEntry.build(
                kind=KINDS[i % len(KINDS)],
                subject=f"model:credit-risk:{1 + i % 3}",
                principal=f"token:svc-{i % 7}",
                body={"request": i, "score": round((i * 37 % 100) / 100, 2), "decision": "allow" if i % 5 else "deny"},
            )
            for i in range(count)
        ]
        receipts = ws.log.append_many(batch)
        typer.echo(f"   last receipt: {json.dumps(receipts[-1].to_json())}")

        _step("3. a signed checkpoint (C2SP tlog-checkpoint, Ed25519)")
        typer.echo("   " + ws.log.checkpoint().replace("\n", "\n   ").rstrip())

        target = count // 2
        _step(f"4. inclusion proof for entry {target}")
        proof = ws.log.inclusion_proof(target).to_json()
        typer.echo(f"   tree size {proof['tree_size']}, root {proof['root_hash']}")
        typer.echo(f"   audit path: {len(proof['proof'])} hashes, first {proof['proof'][0][:16]}...")

        _step("5. verify the whole ledger")
        report = ws.log.verify()
        typer.echo(
            f"   ok={report.ok}: {report.size} entries recomputed, {report.checkpoints_checked} checkpoint(s) verified"
        )
    finally:
        ws.close()

    _step(f"6. an operator edits entry {target} in a copy of the database")
    copy_home = root / "tampered"
    shutil.copytree(options.paths.home, copy_home)
    with sqlite3.connect(copy_home / "mlwarden.db") as db:
        text = db.execute("SELECT entry FROM ledger_entries WHERE idx = ?", (target,)).fetchone()[0]
        flipped = ('"decision":"allow"', '"decision":"deny"')
        forged = text.replace(*flipped) if flipped[0] in text else text.replace(*reversed(flipped))
        db.execute("UPDATE ledger_entries SET entry = ? WHERE idx = ?", (forged, target))
    typer.echo(f"   (entry {target}: its decision flipped, straight in the database file)")

    copy = WorkspaceOptions.from_settings(Settings(database_url=None), copy_home)
    tampered = open_workspace(copy, check=False)
    try:
        report = tampered.log.verify()
    finally:
        tampered.close()
    finding = report.finding
    if finding is None:
        typer.secho("   the verifier did not notice: this is a bug", fg="red")
        raise typer.Exit(1)
    typer.secho(f"   verifier: {finding.problem} at index {finding.index}: {finding.message}", fg="red")
    typer.secho("\nThe ledger names the exact entry that was changed. Try `mlwarden --help` next.", bold=True)
