"""``mlwarden gate check``: run the gates in CI, with no server; exit 0 pass, 1 a gate failed, 2 bad input."""

from __future__ import annotations

import hashlib
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from mlwarden.cli.context import state
from mlwarden.cli.keys import read_statement
from mlwarden.errors import InvalidInput
from mlwarden.gates.interface import Candidate, GateContext
from mlwarden.gates.reports import table, write_reports
from mlwarden.gates.runner import all_passed, load_gate_policy, run_gates
from mlwarden.registry.cards import decode_card
from mlwarden.registry.signed_approvals import add_signed_approvals, artifact_expectation, model_expectation

app = typer.Typer(help="Governance gates, also for CI.", no_args_is_help=True)


@app.command("check")
def check(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A model file, or NAME:VERSION in the workspace.")],
    policy: Annotated[Path, typer.Option("--policy", help="Policy YAML with stages and gate settings.")],
    stage: Annotated[str, typer.Option("--stage")] = "production",
    eval_file: Annotated[
        Path | None, typer.Option("--eval", help="Evaluation data (CSV, Parquet, JSON lines).")
    ] = None,
    card: Annotated[Path | None, typer.Option("--card", help="Model card, for a model file.")] = None,
    report: Annotated[
        list[Path] | None, typer.Option("--report", help="Vulnerability report JSON (repeatable).")
    ] = None,
    approval: Annotated[
        list[Path] | None,
        typer.Option("--approval", help="Signed approval (`model approve --sign-with KEY --out FILE`); repeatable."),
    ] = None,
    approver: Annotated[list[str] | None, typer.Option("--approver", hidden=True)] = None,
    registrant: Annotated[
        str | None,
        typer.Option("--registrant", help="For a model file: who submitted it, as the CI authenticated them."),
    ] = None,
    report_dir: Annotated[
        Path | None, typer.Option("--report-dir", help="Write junit.xml, gates.sarif, report.html.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run the stage's gates and print the table; write JUnit, SARIF and HTML with --report-dir."""
    from mlwarden.registry.governance import evaluation_from_file, gate_context

    if approver:
        raise InvalidInput(
            "--approver is no longer accepted (a name on the command line proves nothing): "
            "pass --approval FILE, an approval signed with "
            "`mlwarden model approve NAME:VERSION --sign-with KEY --out FILE`"
        )
    gate_policy = load_gate_policy(policy)
    statements = [read_statement(item) for item in approval or []]
    if not gate_policy.gates_for(stage):
        raise InvalidInput(f"policy {policy} names no gates for stage {stage!r}")
    if report_dir is not None:
        _report_folder(report_dir)  # an unusable --report-dir fails before the gates run, not after
    path = Path(target)
    if path.exists():
        data = _read_input(path, "model file")
        card_model = decode_card(_read_input(card, "model card"), source=f"model card {card}") if card else None
        reports = []
        for item in report or []:
            try:
                content = item.read_bytes()
            except OSError as exc:
                raise InvalidInput(f"cannot read report {item}: {exc.strerror}") from exc
            reports.append((item.name, content, hashlib.sha256(content).hexdigest()))
        candidate = Candidate(
            path.stem, None, hashlib.sha256(data).hexdigest(), None, data, path.name, card_model, registrant
        )
        context = GateContext(
            candidate=candidate,
            now=datetime.now(UTC),
            evaluation=evaluation_from_file(eval_file) if eval_file else None,
            reports=reports,
            waivers=gate_policy.waivers,
        )
        expected = artifact_expectation(candidate.sha256)
        add_signed_approvals(context, gate_policy.approvers, statements, expected=expected)
        label = path.name
    else:
        from mlwarden.registry.models import parse_ref

        name, version = parse_ref(target)
        ws = state(ctx).open()
        try:
            context = gate_context(ws, name, version or 1, gate_policy, stage, eval_file)
        finally:
            ws.close()
        label = target
        expected = model_expectation(name, version or 1, context.candidate.sha256)
        add_signed_approvals(context, gate_policy.approvers, statements, expected=expected)
    results = run_gates(gate_policy, stage, context)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "target": label,
                    "stage": stage,
                    "passed": all_passed(results),
                    "results": [r.to_json() for r in results],
                }
            )
        )
    else:
        typer.echo(table(results, f"gates for {label} -> {stage}"))
    if report_dir is not None:
        try:
            written = write_reports(
                results, report_dir, title=f"mlwarden gates: {label} -> {stage}", suite=stage, artifact_uri=label
            )
        except OSError as exc:
            raise InvalidInput(f"cannot write the gate reports to {report_dir}: {exc.strerror or exc}") from exc
        if not as_json:
            typer.echo("reports: " + ", ".join(written.values()))
    if not all_passed(results):
        raise typer.Exit(1)


def _read_input(path: Path, what: str) -> bytes:
    try:
        if path.is_dir():
            raise InvalidInput(f"{what} {path} is a folder, not a file")
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def _report_folder(folder: Path) -> None:
    """Create ``folder`` and check a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InvalidInput(f"cannot write the gate reports to {folder}: {exc.strerror or exc}") from exc
