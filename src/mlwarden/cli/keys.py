"""``mlwarden keys``: a person's own signing key; and reading/writing signed statement files for other commands."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from mlwarden.errors import InvalidInput
from mlwarden.identity.personal_keys import create_personal_key
from mlwarden.identity.statements import MAX_STATEMENT_BYTES, SignedStatement
from mlwarden.workspace import local_principal

app = typer.Typer(help="Personal signing keys for approvals and releases.", no_args_is_help=True)

DEFAULT_KEY_DIR = Path("~/.config/mlwarden/keys")
VALID_DAYS_HELP = "Days the signed statement stays valid."


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Your approver name (as listed in policy.yaml).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for NAME.key (mode 0600) and NAME.pub.")] = DEFAULT_KEY_DIR,
) -> None:
    """Create your own Ed25519 key pair (never overwriting one) and print the line for policy.yaml's approvers."""
    created = create_personal_key(name, out.expanduser())
    typer.echo(created.policy_line((local_principal(),)))
    sys.stderr.write(
        f"private key {created.private_key} (mode 0600, keep it to yourself); public key {created.public_key}\n"
        "add the line above under `approvers:` in policy.yaml; accounts lists your other identities "
        "(local:<os account>, token:<id>) so none of them can approve what you registered\n"
    )


def valid_for(days: int) -> timedelta:
    """The validity of a statement signed now."""
    return timedelta(days=days)


def read_statement(path: Path) -> SignedStatement:
    """A signed statement file (well-formed; verified by the command that uses it)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_STATEMENT_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read signed statement {path}: {exc.strerror}") from exc
    return SignedStatement.parse(data, source=f"signed statement {path}")


def write_statement(path: Path, signed: SignedStatement) -> None:
    """Write a signed statement for someone else (CI) to submit."""
    try:
        path.write_text(json.dumps(signed.to_json(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from exc
