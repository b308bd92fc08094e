"""``mlwarden ledger``: record, checkpoint, prove, verify, export and tail the decision ledger."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mlwarden.cli.context import print_json, state
from mlwarden.errors import InvalidInput, KeyMismatch
from mlwarden.ledger.bundle import export_bundle, verify_bundle
from mlwarden.ledger.entry import PreparedEntry, parse_json_object
from mlwarden.ledger.keys import load_verifier
from mlwarden.ledger.kinds import user_kind
from mlwarden.ledger.log import Log
from mlwarden.ledger.pins import KeyPin
from mlwarden.ledger.verify import KEY_MISMATCH, CheckpointSource, Finding, VerifyReport
from mlwarden.subjects.audit import PayloadReport, audit_payloads
from mlwarden.trust.audit import RowFinding, audit_all
from mlwarden.trust.follower import StateFollower
from mlwarden.workspace import Workspace, local_principal

app = typer.Typer(help="The tamper-evident decision ledger.", no_args_is_help=True)
proof_app = typer.Typer(help="Inclusion and consistency proofs (JSON, hex hashes).", no_args_is_help=True)
app.add_typer(proof_app, name="proof")

MAX_JSONL_BYTES = 256 * 1024 * 1024


def _read_jsonl(path: Path, principal: str) -> list[PreparedEntry]:
    try:
        handle = sys.stdin if str(path) == "-" else path.open("r", encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    prepared: list[PreparedEntry] = []
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    obj = parse_json_object(line, what=f"line {number}")
                    unknown = set(obj) - {"kind", "subject", "body"}
                    if unknown:
                        raise InvalidInput(f"unknown field(s) {', '.join(sorted(unknown))}")
                    for key in ("kind", "subject", "body"):
                        if key not in obj:
                            raise InvalidInput(f"missing field {key!r}")
                    prepared.append(
                        PreparedEntry.build(
                            kind=user_kind(obj["kind"]), subject=obj["subject"], principal=principal, body=obj["body"]
                        )
                    )
                except InvalidInput as exc:
                    raise InvalidInput(f"{path} line {number}: {exc.message}; nothing was recorded") from exc
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{path} is not UTF-8 text; nothing was recorded") from exc
    return prepared


@app.command()
def record(
    ctx: typer.Context,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind", help="User kind, written under external.* (deploy -> external.deploy); system kinds refused."
        ),
    ] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="What the decision is about.")] = None,
    body: Annotated[str | None, typer.Option("--body", help="JSON object with the details.")] = None,
    jsonl: Annotated[
        Path | None, typer.Option("--jsonl", help="Record one entry per line ({kind, subject, body}); all or nothing.")
    ] = None,
) -> None:
    """Record an external decision; print its receipt {"index", "leaf_hash"} as one JSON line.

    Kinds live in the user namespace ``external.*`` (``--kind deploy`` is recorded as
    ``external.deploy``); a system kind such as ``model.promoted`` is refused (exit 2), so a
    user record never counts as evidence the system acts on.
    """
    principal = local_principal()
    if jsonl is not None:
        if kind or subject or body:
            raise InvalidInput("use either --jsonl or --kind/--subject/--body, not both")
        prepared = _read_jsonl(jsonl, principal)
    else:
        if kind is None or subject is None or body is None:
            raise InvalidInput("--kind, --subject and --body are all required (or use --jsonl FILE)")
        parsed = parse_json_object(body, what="--body")
        prepared = [PreparedEntry.build(kind=user_kind(kind), subject=subject, principal=principal, body=parsed)]
    ws = state(ctx).open()
    try:
        for receipt in ws.log.append_many(prepared):
            print_json(receipt.to_json())
    finally:
        ws.close()


@app.command()
def checkpoint(ctx: typer.Context) -> None:
    """Sign, store and publish a checkpoint of the ledger; print the signed note."""
    ws = state(ctx).open()
    try:
        sys.stdout.write(ws.log.checkpoint())
    finally:
        ws.close()


@proof_app.command("inclusion")
def proof_inclusion(
    ctx: typer.Context,
    index: Annotated[int, typer.Argument(help="Entry index.")],
    size: Annotated[int | None, typer.Option("--size", help="Tree size (default: the current size).")] = None,
) -> None:
    """Prove that entry INDEX is in the tree."""
    ws = state(ctx).open()
    try:
        print_json(ws.log.inclusion_proof(index, size).to_json())
    finally:
        ws.close()


@proof_app.command("consistency")
def proof_consistency(
    ctx: typer.Context,
    old: Annotated[int, typer.Argument(help="Older tree size.")],
    new: Annotated[int, typer.Argument(help="Newer tree size.")],
) -> None:
    """Prove that the tree of size OLD is a prefix of the tree of size NEW."""
    ws = state(ctx).open()
    try:
        print_json(ws.log.consistency_proof(old, new).to_json())
    finally:
        ws.close()


def _checkpoint_args(paths: list[Path]) -> list[CheckpointSource]:
    sources = []
    for path in paths:
        try:
            note = path.read_text(encoding="utf-8")[:65536]
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read checkpoint {path}: {exc}") from exc
        sources.append(CheckpointSource(note, f"checkpoint {path}", external=True))
    return sources


def _key_label(report: VerifyReport) -> str:
    if report.key_fingerprint is None:
        return ""
    name = f"{report.key_name} " if report.key_name else ""
    return f"key {name}(fingerprint {report.key_fingerprint})"


def _print_report(report: VerifyReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_json())
    elif report.finding is None:
        typer.echo(
            f"ledger intact: {report.size} {'entry' if report.size == 1 else 'entries'}, root {report.root.hex()}, "
            f"{report.checkpoints_checked} signed checkpoint(s) verified with {_key_label(report)}"
        )
    else:
        f = report.finding
        where = "" if f.index is None else f" at index {f.index}"
        pinned = f" (verifying with {_key_label(report)})" if report.key_fingerprint else ""
        typer.echo(f"ledger NOT intact: {f.problem}{where}: {f.message}{pinned}", err=True)


def _key_pin(public_key: Path | None, fingerprint: str | None) -> KeyPin | None:
    if public_key is None and fingerprint is None:
        return None
    return KeyPin(load_verifier(public_key) if public_key else None, fingerprint)


@app.command()
def verify(
    ctx: typer.Context,
    checkpoint_files: Annotated[
        list[Path] | None,
        typer.Option("--checkpoint", help="A checkpoint note published earlier; the log must be consistent with it."),
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="Verify an exported bundle, with no database (needs a pinned key)."),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="The verifier key you trust (the workspace's keys/ledger.pub)."),
    ] = None,
    key_fingerprint: Annotated[
        str | None,
        typer.Option(
            "--key-fingerprint", help="The fingerprint you trust: hex SHA-256 of the raw key, as `init` prints it."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Recompute every leaf and root and check every signed checkpoint. Exit 0 intact, 1 not.

    A bundle is checked only against the key you pin with --public-key or --key-fingerprint,
    never against the key it carries. With a workspace, a pin must match the workspace's key.
    """
    extra = _checkpoint_args(checkpoint_files or [])
    pin = _key_pin(public_key, key_fingerprint)
    if bundle is not None:
        if pin is None:
            raise InvalidInput(
                "--bundle needs the key you trust: pass --public-key FILE (the workspace's keys/ledger.pub) "
                "or --key-fingerprint HEX (printed by `mlwarden init`); the key inside a bundle proves nothing"
            )
        report = verify_bundle(bundle, pin, extra)
        _print_report(report, as_json)
        if not report.ok:
            raise typer.Exit(1)
        return
    ws = state(ctx).open(check=False)
    try:
        report = _verify_workspace(ws.log, pin, extra)
        rows = _audit_rows(ws) if report.ok else []
        payloads = audit_payloads(ws) if report.ok else PayloadReport()
    finally:
        ws.close()
    ok = report.ok and not rows and payloads.ok
    if as_json:
        print_json({**report.to_json(), "ok": ok, "rows": [r.to_json() for r in rows], "payloads": payloads.to_json()})
    else:
        _print_report(report, False)
        for row in rows:
            typer.echo(f"row NOT trusted: {row.line()}", err=True)
        if report.ok and not rows:
            typer.echo("enforced state intact: every token, stage, approval, dataset and index row matches the ledger")
        _print_payloads(payloads, report.ok)
    if not ok:
        raise typer.Exit(1)


def _print_payloads(payloads: PayloadReport, checked: bool) -> None:
    if not checked:
        return
    for problem in payloads.tampered:
        typer.echo(f"payload NOT intact at index {problem['index']}: {problem['problem']}", err=True)
    erased = ", ".join(f"{n} by the erasure at index {i}" for i, n in sorted(payloads.erased_by.items()))
    typer.echo(
        f"personal data: {payloads.verified} payload(s) open and match their commitments, "
        f"{payloads.erased} erased{f' ({erased})' if erased else ''}, {len(payloads.tampered)} problem(s)"
    )


def _audit_rows(ws: Workspace) -> list[RowFinding]:
    """Every enforced row against a state folded afresh from the first entry (no snapshot trusted)."""
    state = StateFollower(ws.engine, ws.signer, use_snapshot=False).refresh()
    return audit_all(ws, state)


def _verify_workspace(log: Log, pin: KeyPin | None, extra: list[CheckpointSource]) -> VerifyReport:
    if pin is not None:
        try:
            pin.resolve(log.verifier, holder="the workspace")
        except KeyMismatch as exc:
            report = VerifyReport(finding=Finding(None, KEY_MISMATCH, exc.message))
            report.verified_with(log.verifier)
            return report
    return log.verify(extra)


@app.command("export")
def export(ctx: typer.Context, folder: Annotated[Path, typer.Argument(help="New or empty folder.")]) -> None:
    """Write an audit bundle (entries, checkpoints, public key) that verifies offline."""
    ws = state(ctx).open()
    try:
        manifest = export_bundle(ws.log, folder)
    finally:
        ws.close()
    typer.echo(
        f"exported {manifest['size']} entries to {folder}, signed by key {manifest['key_name']} "
        f"(fingerprint {manifest['key_fingerprint']}); an auditor verifies with: mlwarden ledger verify "
        f"--bundle {folder} --key-fingerprint FINGERPRINT, taking the fingerprint from you, not from the bundle"
    )


@app.command()
def tail(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("-n", "--lines", min=0, help="How many entries.")] = 10,
) -> None:
    """Show the latest entries, oldest first, one JSON object per line."""
    ws = state(ctx).open(check=False)
    try:
        entries = ws.log.tail(n)
    finally:
        ws.close()
    for stored in entries:
        out: dict[str, Any] = {"leaf_hash": stored.leaf_hash.hex(), **stored.parse().to_json()}
        print_json(out)
