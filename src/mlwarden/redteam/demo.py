"""The demo's red-team step: a short pass over a running gateway, then where the report is.

``mlwarden demo`` calls :func:`demo_redteam` after its gateway tour, with that gateway's URL and
the tokens it minted (the lead wires the call into ``cli/demo.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mlwarden.redteam.findings import FindingSeverity, SuiteResult
from mlwarden.redteam.session import RunOutcome, RunRequest, execute
from mlwarden.redteam.target import Tokens

DEMO_SUITES = "access,input"
"""Fast and needing only an inference token: a couple of dozen requests each."""


def demo_redteam(
    base_url: str,
    *,
    model: str,
    inference_token: str,
    report_dir: Path,
    audit_token: str | None = None,
    signature: Path | None = None,
    echo: Callable[[str], None] = print,
) -> RunOutcome:
    """Attack the demo's gateway with the access and input suites; print each suite's line and the report's path."""

    def progress(name: str, result: SuiteResult | None) -> None:
        if result is not None:
            high = sum(f.severity is FindingSeverity.HIGH for f in result.findings)
            echo(f"   {name}: {len(result.checks)} probes, {len(result.findings)} findings ({high} high)")

    request = RunRequest(model=model, url=base_url, tokens=Tokens(inference_token, audit=audit_token),
                         suites=DEMO_SUITES, seconds=30.0, report_dir=report_dir, signature=signature)  # fmt: skip
    outcome = execute(request, progress)
    verdict = "no defence failed" if outcome.report.passed else "a defence failed"
    echo(f"   {verdict}; report: {outcome.files['html']} (also report.json, redteam.sarif, junit.xml)")
    return outcome
