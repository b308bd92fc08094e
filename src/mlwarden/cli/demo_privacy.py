"""The demo's erasure step: a prediction naming a data subject, `privacy erase`, the payload gone, the ledger intact."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.workspace import open_workspace

SUBJECT = "customer-42"


def privacy_tour(root: Path, step: Callable[[str, str], None]) -> None:
    """Steps 22-25 of `mlwarden demo` (``step`` prints a numbered heading and the command it stands for)."""
    from mlwarden.runtime.predict import predict
    from mlwarden.subjects.audit import audit_payloads
    from mlwarden.subjects.decisions import decision_payloads
    from mlwarden.subjects.erasure import erase_data_subject

    ws = open_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), root / "workspace"))
    try:
        step(
            f"22. a prediction naming its data subject ({SUBJECT}): the ledger keeps a commitment, not the inputs",
            f'mlwarden model predict breast-cancer --input row.json --subject "{SUBJECT}"',
        )
        first = (root / "artifacts" / "eval.csv").read_text().splitlines()[1]
        row = [float(v) for v in first.split(",")[:-1]]
        result = predict(ws, "breast-cancer", 1, [row], "local:demo", [SUBJECT])
        decision, index = result["decision_ids"][0], result["ledger_index"]
        entry = ws.log.verified_entry(index)[0].to_json()
        commitment = entry["body"]["inputs_commitments"][0]
        typer.echo(f"   entry {index} holds inputs_commitments[0] = {commitment[:24]}… (no input value)")
        opened = decision_payloads(ws, entry, decision)["inputs"]
        typer.echo(f"   sealed inputs open for the workspace: {opened[:3]}… ({len(opened)} values)")

        step("23. the customer asks to be forgotten", f'mlwarden privacy erase --subject "{SUBJECT}" --reason ...')
        erased = erase_data_subject(ws, SUBJECT, reason="gdpr art. 17 request", principal="local:dpo")
        typer.echo(
            f"   {erased['keys_destroyed']} data key(s) destroyed; erasure recorded at ledger index "
            f"{erased['ledger_index']} (the entry names no subject)"
        )

        step("24. the same decision now", f"GET /v1/decisions/{decision}")
        typer.secho(f"   inputs: {decision_payloads(ws, entry, decision)['inputs']}", fg="yellow")

        step("25. the ledger still verifies, and says what was erased", "mlwarden ledger verify")
        report, payloads = ws.log.verify(), audit_payloads(ws)
        by = ", ".join(f"{n} by the erasure at index {i}" for i, n in sorted(payloads.erased_by.items()))
        typer.echo(f"   ok={report.ok and payloads.ok}: {report.size} entries recomputed, every proof intact")
        typer.echo(
            f"   personal data: {payloads.verified} payload(s) open and match their commitments, "
            f"{payloads.erased} erased ({by}), {len(payloads.tampered)} problem(s)"
        )
    finally:
        ws.close()
