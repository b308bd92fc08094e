"""A whole ``redteam run``: build the target (``--url`` or ``--home``), run the suites, write the evidence, record.

The CLI parses options into a :class:`RunRequest` and calls :func:`execute`; the schedule calls it
again and again. Nothing here prints: progress goes to an observer.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.errors import InvalidInput
from mlwarden.redteam.evidence import write_evidence
from mlwarden.redteam.findings import FindingSeverity
from mlwarden.redteam.ledger_view import AuditApiView
from mlwarden.redteam.record import load_report, record_run
from mlwarden.redteam.rows import ranges_from, read_rows, stored_rows
from mlwarden.redteam.run import Progress, RunReport, regressions, run_suites
from mlwarden.redteam.suites import FeatureRange, SuiteOptions, select
from mlwarden.redteam.target import Target, TargetUnreachable, Tokens


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Everything ``redteam run`` was asked to do (``workspace`` set: ``--home`` mode, else ``url``)."""

    model: str
    url: str | None = None
    workspace: WorkspaceOptions | None = None
    settings: Settings | None = None
    tokens: Tokens | None = field(default=None, repr=False)
    suites: str | None = None
    budget: int = 2_000
    seconds: float = 60.0
    timeout: float = 10.0
    report_dir: Path = Path("redteam-report")
    baseline: Path | None = None
    fail_on: FindingSeverity = FindingSeverity.HIGH
    signature: Path | None = None
    reference: Path | None = None
    holdout: Path | None = None
    label: str | None = None
    dataset: str | None = None
    principal: str = "local:unknown"


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """The report, where its files are, their digest and (``--home``) the ledger entry recording it."""

    report: RunReport
    files: dict[str, str]
    digest: str
    ledger_index: int | None


def _signature_features(path: Path) -> tuple[FeatureRange, ...]:
    try:
        doc = json.loads(path.read_text())
        return tuple(FeatureRange(str(f["name"]), str(f.get("dtype", "float32")), f.get("min"), f.get("max"))
                     for f in doc["features"])  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"signature {path} must be JSON with features [{{name, dtype, min, max}}]: {exc}") from exc


def _url_options(request: RunRequest) -> SuiteOptions:
    features = _signature_features(request.signature) if request.signature is not None else ()
    reference = training = holdout = None
    if request.reference is not None:
        reference = read_rows(request.reference, label=request.label, features=features)
        training = stored_rows(request.reference, label=request.label)
        features = ranges_from(reference, features)
    if request.holdout is not None:
        holdout = read_rows(request.holdout, label=request.label, features=features)
    return SuiteOptions(budget=request.budget, seconds=request.seconds, features=features, reference=reference,
                        holdout=holdout, label=request.label, dataset=request.dataset, training=training)  # fmt: skip


@contextlib.contextmanager
def _attack(request: RunRequest) -> Iterator[tuple[Target, SuiteOptions, dict[str, Any]]]:
    """The target and what the suites know, for either mode; the home gateway stops when the block ends."""
    if request.workspace is None:
        if request.url is None or request.tokens is None:
            raise InvalidInput("give --url URL and --token TOKEN, or --home DIR")
        target = Target(base_url=request.url, model=request.model, tokens=request.tokens, budget=request.budget,
                        timeout=request.timeout)  # fmt: skip
        try:
            options = _url_options(request)
            if request.tokens.audit:
                options = replace(options, ledger=AuditApiView(target, request.tokens.audit))
            yield target, options, {}
        finally:
            target.close()
        return
    from mlwarden.redteam.home import home_run

    with home_run(request.workspace, request.settings or Settings(), model=request.model, dataset=request.dataset,
                  principal=request.principal) as home:  # fmt: skip
        target = Target(base_url=home.base_url, model=request.model, tokens=home.tokens, budget=request.budget,
                        timeout=request.timeout)  # fmt: skip
        options = SuiteOptions(budget=request.budget, seconds=request.seconds, features=home.features,
                               reference=home.reference, label=home.label, dataset=home.dataset,
                               training=home.training, home=request.workspace.paths.home, ledger=home.ledger,
                               holdout=read_rows(request.holdout, label=home.label, features=home.features)
                               if request.holdout is not None else None)  # fmt: skip
        try:
            yield target, options, {"version": home.version, "sha256": home.sha256}
        finally:
            target.close()


def _reachable(target: Target) -> None:
    """One ``GET /healthz`` first: an unreachable target is exit 2, not a run full of errors."""
    reply = target.request("GET", "/healthz")
    if reply.status >= 500:
        raise TargetUnreachable(f"target {target.base_url} answered /healthz with {reply.status}")


def execute(request: RunRequest, progress: Progress | None = None) -> RunOutcome:
    """Run, write the evidence into ``request.report_dir``, and (``--home``) record the run in the ledger."""
    names = select(request.suites)
    baseline = load_report(request.baseline)[0] if request.baseline is not None else None
    with _attack(request) as (target, options, served):
        _reachable(target)
        report = run_suites(target, options, names, fail_on=request.fail_on, progress=progress)
        secrets = target.tokens.secrets()
    if report.version is None and served:
        report.version, report.sha256 = served["version"], served["sha256"]
    if baseline is not None:
        report.regressions = regressions(report, baseline)
        report.baseline = str(request.baseline)
    files, digest = write_evidence(report.to_json(), request.report_dir, secrets)
    index = None
    if request.workspace is not None:
        from mlwarden.workspace import open_workspace

        ws = open_workspace(request.workspace)
        try:
            clean = json.loads(Path(files["json"]).read_bytes())
            index = record_run(ws, clean, digest, principal=request.principal, source="home")
        finally:
            ws.close()
    return RunOutcome(report, files, digest, index)
