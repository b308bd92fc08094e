"""``mlwarden privacy``: erase a data subject's personal data (crypto-shredding), recorded in the ledger."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from mlwarden.cli.context import print_json, state
from mlwarden.errors import InvalidInput
from mlwarden.ledger.keys import load_verifier
from mlwarden.ledger.pins import KeyPin
from mlwarden.subjects.erasure import erase_data_subject
from mlwarden.subjects.export import export_subject
from mlwarden.subjects.export_check import check_export
from mlwarden.subjects.retention import apply_retention
from mlwarden.workspace import local_principal

MAX_EXPORT_BYTES = 256 << 20

app = typer.Typer(help="Personal data: erasure, retention and subject access.", no_args_is_help=True)


@app.command("erase")
def erase(
    ctx: typer.Context,
    subject: Annotated[str, typer.Option("--subject", help="The data subject's id, as given in predict requests.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the ledger), e.g. 'gdpr art. 17'.")],
) -> None:
    """Destroy every data key of SUBJECT: all its inputs and outputs become unreadable; the erasure is recorded."""
    ws = state(ctx).open()
    try:
        print_json(erase_data_subject(ws, subject, reason=reason, principal=local_principal()))
    finally:
        ws.close()


@app.command("export")
def export(
    ctx: typer.Context,
    subject: Annotated[str, typer.Option("--subject", help="The data subject's id.")],
    out: Annotated[Path | None, typer.Option("--out", help="Write here (mode 0600) instead of stdout.")] = None,
) -> None:
    """Every decision about SUBJECT with inputs, outputs, inclusion proofs and the signed checkpoint."""
    ws = state(ctx).open()
    try:
        document = export_subject(ws, subject, principal=local_principal())
    finally:
        ws.close()
    if out is None:
        print_json(document)
        return
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise InvalidInput(f"cannot create {out}: {exc.strerror} (it must not exist yet)") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    print_json({"out": str(out), "decisions": len(document["decisions"])})


@app.command("verify-export")
def verify_export(
    file: Annotated[Path, typer.Argument(help="A file written by `mlwarden privacy export`.")],
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="The ledger's verifier key you trust (keys/ledger.pub).")
    ] = None,
    key_fingerprint: Annotated[
        str | None, typer.Option("--key-fingerprint", help="The key fingerprint you trust (printed by `init`).")
    ] = None,
) -> None:
    """Verify an export offline (no workspace): proofs against the signed checkpoint, payloads against commitments."""
    if public_key is None and key_fingerprint is None:
        raise InvalidInput("verify-export needs the key you trust: --public-key FILE or --key-fingerprint HEX")
    pin = KeyPin(load_verifier(public_key) if public_key else None, key_fingerprint)
    try:
        if file.stat().st_size > MAX_EXPORT_BYTES:
            raise InvalidInput(f"{file} is larger than {MAX_EXPORT_BYTES} bytes")
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {file}: {exc}") from exc
    print_json(check_export(text, pin).to_json())


@app.command("retention")
def retention(
    ctx: typer.Context,
    now: Annotated[
        bool, typer.Option("--now", help="Apply the retention limit now (the gateway does it hourly).")
    ] = False,
) -> None:
    """Erase prediction inputs older than policy.yaml's privacy.inputs_retention_days; print what was erased."""
    if not now:
        raise InvalidInput("privacy retention runs only with --now (the gateway's lease holder applies it hourly)")
    ws = state(ctx).open()
    try:
        result = apply_retention(ws, principal=local_principal())
    finally:
        ws.close()
    if result["inputs_retention_days"] is None:
        raise InvalidInput(f"{ws.options.paths.policy} sets no privacy.inputs_retention_days: nothing to apply")
    print_json(result)
