"""``mlwarden redteam``: attack a gateway as an adversary would, and leave evidence (run, record, schedule).

Exit codes of ``run``: 0 nothing at or above ``--fail-on`` and no regression against the baseline;
1 otherwise; 2 bad input or an unreachable target. Tokens come from options, ``@FILE`` values or
environment variables (``MLWARDEN_REDTEAM_TOKEN``, ``MLWARDEN_REDTEAM_AUDIT_TOKEN``...), so they
need not land in shell history; they are never printed or written to a report.
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from mlwarden.cli.context import print_json, state
from mlwarden.errors import InvalidInput
from mlwarden.identity.tokens import parse_duration
from mlwarden.redteam.findings import FindingSeverity, SuiteResult
from mlwarden.redteam.target import Tokens

app = typer.Typer(help="Red teaming: attack a gateway, its models and its data intake; report and record.",
                  no_args_is_help=True)  # fmt: skip

_ENV = "MLWARDEN_REDTEAM_"


def _token_option(role: str, what: str) -> object:
    env = f"{_ENV}{role.upper()}_TOKEN" if role != "inference" else f"{_ENV}TOKEN"
    flag = "--token" if role == "inference" else f"--{role.replace('_', '-')}-token"
    return typer.Option(flag, envvar=env, show_envvar=True, help=f"{what} (or @FILE, or ${env}).")


def _secret(value: str | None, flag: str) -> str | None:
    """A token value, or the first line of the file after ``@``."""
    if value is None or not value.startswith("@"):
        return value or None
    path = Path(value[1:])
    try:
        text = path.read_text().strip().splitlines()
    except OSError as exc:
        raise InvalidInput(f"{flag}: cannot read {path}: {exc.strerror}") from exc
    if not text:
        raise InvalidInput(f"{flag}: {path} is empty")
    return text[0].strip()


def _tokens(raw: dict[str, str | None]) -> Tokens:
    values = {role: _secret(value, f"--{role.replace('_', '-')}-token") for role, value in raw.items()}
    inference = values.pop("inference")
    if not inference:
        raise InvalidInput("--url needs --token (an inference:read token for the model) or $MLWARDEN_REDTEAM_TOKEN")
    return Tokens(inference, **{k: v for k, v in values.items() if v})


def _progress(name: str, result: SuiteResult | None) -> None:
    if result is None:
        sys.stderr.write(f"redteam: {name}...\n")
        return
    counts = {s.value: sum(f.severity is s for f in result.findings) for s in FindingSeverity}
    skipped = sum(c.status.value == "not_checked" for c in result.checks)
    sys.stderr.write(f"redteam: {name}: {len(result.checks)} probes, {counts['high']} high, {counts['medium']} medium, "
                     f"{counts['low']} low, {skipped} not checked ({result.seconds:.1f} s)\n")  # fmt: skip


@app.command("run")
def run(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", help="The model to attack (its production version is served).")],
    url: Annotated[str | None, typer.Option("--url", help="The gateway's base URL (e.g. https://gw:8443).")] = None,
    home: Annotated[Path | None, typer.Option("--home", help="Start this workspace's gateway in process.")] = None,
    inference_token: Annotated[str | None, _token_option("inference", "An inference:read token for --model")] = None,
    audit_token: Annotated[str | None, _token_option("audit", "audit:read: check refusals reach the ledger")] = None,
    data_token: Annotated[str | None, _token_option("data", "data:write: the poisoning suite")] = None,
    model_write_token: Annotated[str | None, _token_option("model_write", "model:write: governance")] = None,
    promote_token: Annotated[str | None, _token_option("promote", "model:promote: governance")] = None,
    admin_token: Annotated[str | None, _token_option("admin", "admin (not used to attack; scrubbed)")] = None,
    other_model_token: Annotated[str | None, _token_option("other_model", "A token for another model")] = None,
    expired_token: Annotated[str | None, _token_option("expired", "An expired token")] = None,
    revoked_token: Annotated[str | None, _token_option("revoked", "A revoked token")] = None,
    suites: Annotated[str | None, typer.Option("--suite", help="Comma-separated suites (default: all).")] = None,
    budget: Annotated[int, typer.Option("--budget", min=1, help="Model queries the ML suites may spend.")] = 2_000,
    seconds: Annotated[float, typer.Option("--seconds", min=1, help="Time bound per suite.")] = 60.0,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per HTTP request.")] = 10.0,
    report_dir: Annotated[Path, typer.Option("--report-dir")] = Path("redteam-report"),
    baseline: Annotated[Path | None, typer.Option("--baseline", help="A previous report.json.")] = None,
    fail_on: Annotated[FindingSeverity, typer.Option("--fail-on")] = FindingSeverity.HIGH,
    signature: Annotated[Path | None, typer.Option("--signature", help="The model's input signature JSON.")] = None,
    reference: Annotated[Path | None, typer.Option("--reference", help="Training rows (CSV/Parquet).")] = None,
    holdout: Annotated[Path | None, typer.Option("--holdout", help="Rows the model was not trained on.")] = None,
    label: Annotated[str | None, typer.Option("--label", help="The label column of those files.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="The dataset the poisoning suite targets.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as one JSON line.")] = False,
) -> None:
    """Run the red-team suites against a gateway; exit 1 on a finding at or above --fail-on or a regression."""
    from mlwarden.redteam.session import RunRequest, execute
    from mlwarden.workspace import local_principal

    cli = state(ctx)
    if (url is None) == (home is None and cli.home is None):
        raise InvalidInput("give either --url URL (a running gateway) or --home DIR (start this workspace's gateway)")
    raw = {"inference": inference_token, "audit": audit_token, "data": data_token, "model_write": model_write_token,
           "promote": promote_token, "admin": admin_token, "other_model": other_model_token,
           "expired": expired_token, "revoked": revoked_token}  # fmt: skip
    request = RunRequest(
        model=model, url=url, workspace=cli.options(home) if url is None else None, settings=cli.settings,
        tokens=_tokens(raw) if url is not None else None, suites=suites, budget=budget, seconds=seconds,
        timeout=timeout, report_dir=report_dir, baseline=baseline, fail_on=fail_on, signature=signature,
        reference=reference, holdout=holdout, label=label, dataset=dataset, principal=local_principal(),
    )  # fmt: skip
    outcome = execute(request, _progress)
    _print(outcome, as_json)
    raise typer.Exit(0 if outcome.report.passed else 1)


def _print(outcome: object, as_json: bool) -> None:
    from mlwarden.redteam.session import RunOutcome

    if not isinstance(outcome, RunOutcome):  # pragma: no cover
        return
    report = outcome.report
    summary = {"verdict": "pass" if report.passed else "fail", "findings": report.by_severity(),
               "regressions": report.regressions, "report": outcome.files["html"], "digest": outcome.digest,
               "ledger_index": outcome.ledger_index, "version": report.version, "sha256": report.sha256}  # fmt: skip
    if as_json:
        print_json(summary)
        return
    for finding in report.findings:
        typer.echo(f"  {finding.severity.value:<6} {finding.id}: {finding.title}")
    counts = report.by_severity()
    typer.echo(f"{summary['verdict'].upper()}: {counts['high']} high, {counts['medium']} medium, {counts['low']} low"
               + (f"; regressions: {', '.join(report.regressions)}" if report.regressions else ""))  # fmt: skip
    typer.echo(f"report: {outcome.files['html']} ({outcome.digest})")
    if outcome.ledger_index is not None:
        typer.echo(f"recorded: ledger entry {outcome.ledger_index} (redteam.run)")


@app.command("record")
def record(
    ctx: typer.Context,
    report: Annotated[Path, typer.Argument(help="A report.json written by `redteam run --url` (e.g. in CI).")],
) -> None:
    """Record a report in this workspace's ledger (the ``redteam`` gate then counts it), as your OS account."""
    from mlwarden.redteam.record import load_report, record_run
    from mlwarden.workspace import local_principal

    doc, digest = load_report(report)
    ws = state(ctx).open()
    try:
        index = record_run(ws, doc, digest, principal=local_principal(), source="imported")
    finally:
        ws.close()
    typer.echo(f"recorded: ledger entry {index} (redteam.run, {digest})")


@app.command("schedule", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def schedule(
    ctx: typer.Context,
    every: Annotated[str, typer.Option("--every", help="How often: 6h, 30m, 1d...")],
    report_dir: Annotated[Path, typer.Option("--report-dir")] = Path("redteam-reports"),
    count: Annotated[int | None, typer.Option("--count", min=1, help="Stop after this many runs.")] = None,
) -> None:
    """Run ``redteam run`` (its options follow) every interval, as its own process, until SIGTERM/SIGINT.

    Each run writes ``--report-dir``/<UTC time>/ and takes the previous run's report as its baseline,
    so a defence that stops holding fails the next run. Exits with the last run's code.
    """
    interval = parse_duration(every).total_seconds()
    stop = threading.Event()
    before = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = _every(ctx, interval, report_dir, count, stop)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    raise typer.Exit(code)


def _every(ctx: typer.Context, interval: float, report_dir: Path, count: int | None, stop: threading.Event) -> int:
    """The schedule's loop; returns the last run's exit code."""
    from mlwarden.cli.main import main

    home = state(ctx).home
    previous: Path | None = None
    done, code = 0, 0
    while not stop.is_set():
        folder = report_dir / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        argv = [*(["--home", str(home)] if home else []), "redteam", "run", *ctx.args, "--report-dir", str(folder)]
        if previous is not None:
            argv += ["--baseline", str(previous / "report.json")]
        code = main(argv)
        typer.echo(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} run exit {code}: {folder}")
        if (folder / "report.json").is_file():
            previous = folder
        done += 1
        if count is not None and done >= count:
            break
        stop.wait(interval)  # the schedule itself (woken early by a signal), not a stand-in for synchronisation
    return code
