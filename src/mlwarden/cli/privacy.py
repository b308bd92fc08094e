"""``mlwarden privacy``: erase a data subject's personal data (crypto-shredding), recorded in the ledger."""

from __future__ import annotations

from typing import Annotated

import typer

from mlwarden.cli.context import print_json, state
from mlwarden.subjects.erasure import erase_data_subject
from mlwarden.workspace import local_principal

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
