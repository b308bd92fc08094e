"""Recording a run in the workspace ledger: by a ``--home`` run itself, or by ``redteam record`` for a CI report.

A ``--url`` run does not record over HTTP: the gateway cannot check what a client claims it found,
and the ``redteam`` gate would then rest on the word of whoever holds a token. A run recorded here
is attributed to the OS account that ran it (or imported its report) on the workspace's machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlwarden.errors import InvalidInput
from mlwarden.redteam.evidence import digest
from mlwarden.redteam.kinds import REDTEAM_RUN, run_subject
from mlwarden.redteam.run import REPORT_FORMAT
from mlwarden.registry.models import get_version
from mlwarden.workspace import Workspace

MAX_REPORT_BYTES = 32 << 20
_SHA256_HEX = 64


def run_body(report: dict[str, Any], report_digest: str, source: str) -> dict[str, Any]:
    """The ``redteam.run`` entry body: what was attacked, with what, what was found (counts), the report's digest."""
    target = report["target"]
    return {
        "model": target["model"], "version": target["version"], "sha256": target["sha256"],
        "suites": [s["suite"] for s in report["suites"]], "findings": report["findings_by_severity"],
        "finding_ids": sorted({f["id"] for s in report["suites"] for f in s["findings"]})[:200],
        "fail_on": report["fail_on"], "verdict": report["verdict"], "regressions": len(report["regressions"]),
        "started": report["started"], "queries": report["queries"], "report_digest": report_digest,
        "source": source,
    }  # fmt: skip


def record_run(ws: Workspace, report: dict[str, Any], report_digest: str, *, principal: str, source: str) -> int:
    """Append the ``redteam.run`` entry; return its ledger index. The version must exist with that sha256."""
    target = report["target"]
    version = target.get("version")
    if not isinstance(version, int) or not isinstance(target.get("sha256"), str):
        raise InvalidInput("the report names no served version and sha256: the run never got a prediction")
    row = get_version(ws, str(target["model"]), version)
    if row["sha256"] != target["sha256"]:
        raise InvalidInput(
            f"the report is about sha256 {str(target['sha256'])[:16]}…, but {target['model']} v{version} here is "
            f"{str(row['sha256'])[:16]}…"
        )
    receipt = ws.log.append(kind=REDTEAM_RUN, subject=run_subject(str(target["model"]), version),
                            body=run_body(report, report_digest, source), principal=principal)  # fmt: skip
    return int(receipt.index)


def load_report(path: Path) -> tuple[dict[str, Any], str]:
    """A report.json written by ``redteam run`` and its digest; anything else is an input error."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read report {path}: {exc.strerror}") from exc
    if len(data) > MAX_REPORT_BYTES:
        raise InvalidInput(f"report {path} is larger than {MAX_REPORT_BYTES} bytes")
    try:
        report = json.loads(data)
    except ValueError as exc:
        raise InvalidInput(f"report {path} is not JSON: {exc}") from exc
    if not isinstance(report, dict) or report.get("format") != REPORT_FORMAT:
        raise InvalidInput(f"{path} is not a red-team report ({REPORT_FORMAT})")
    for key in ("target", "suites", "findings_by_severity", "fail_on", "verdict", "regressions", "started"):
        if key not in report:
            raise InvalidInput(f"report {path} lacks {key!r}")
    suites = report["suites"]
    if not isinstance(suites, list) or not all(isinstance(s, dict) and isinstance(s.get("findings"), list)
                                               for s in suites):  # fmt: skip
        raise InvalidInput(f"report {path}: suites must be a list of suite results")
    sha = report["target"].get("sha256") if isinstance(report["target"], dict) else None
    if sha is not None and (not isinstance(sha, str) or len(sha) != _SHA256_HEX):
        raise InvalidInput(f"report {path}: target sha256 is not 64 hex characters")
    return report, digest(data)
