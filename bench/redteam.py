"""Red-team benchmark: how long the default deterministic suites take against a served model.

Builds a workspace (the sample random forest in production, registered with its signature and its
labelled training set), then times, as a user would run it, ``mlwarden --home WS redteam run
--model bc --suite access,input,poisoning,governance`` in a subprocess (imports, the in-process
gateway, every suite, the four report files, the ledger record). Baseline, in the same run: the
same number of plain, valid predict requests through the same gateway (what the run costs as
mere traffic). Prints one JSON object; the issue's target is ``seconds_default_suites`` <= 120.
The extraction suite's fidelity keys are added by that suite's benchmark at merge.

Usage: python bench/redteam.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.tokens import create_token
from mlwarden.redteam.home import serving
from mlwarden.redteam.suites import DEFAULT_SUITES
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.samples import breast_cancer_model
from mlwarden.workspace import init_workspace, open_workspace

SUITES = ",".join(DEFAULT_SUITES)  # every suite `redteam run` runs by default


def _workspace(root: Path) -> tuple[WorkspaceOptions, list[float]]:
    sample = breast_cancer_model(root / "art", trees=50)
    options = WorkspaceOptions.from_settings(Settings(database_url=None), root / "ws")
    init_workspace(options)
    ws = open_workspace(options)
    try:
        register_dataset(ws, name="breast-cancer-train", path=sample.train_csv, principal="bench", label="target")
        register_model(ws, name="bc", path=sample.onnx, card_path=sample.card, principal="bench",
                       signature_path=sample.signature)  # fmt: skip
        approve_and_promote(ws, "bc", 1, approver="reviewer")
    finally:
        ws.close()
    row = [float(v) for v in sample.eval_csv.read_text().splitlines()[1].split(",")[:-1]]
    return options, row


def _red_team(options: WorkspaceOptions, out: Path) -> tuple[float, dict[str, Any], int]:
    command = [sys.executable, "-m", "mlwarden.cli", "--home", str(options.paths.home), "redteam", "run",
               "--model", "bc", "--suite", SUITES, "--report-dir", str(out), "--json"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"redteam run failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, json.loads((out / "report.json").read_text()), done.returncode


def _plain(options: WorkspaceOptions, row: list[float], count: int) -> float:
    """``count`` valid predict requests, one after another, through the same gateway (in process)."""
    ws = open_workspace(options)
    try:
        token, _ = create_token(ws, name="bench-plain", scopes=["inference:read"], principal="bench")
    finally:
        ws.close()
    unlimited = Settings(database_url=None, rate_limit=0)  # the same requests, never refused by the limit
    with serving(options, unlimited) as url, httpx.Client(base_url=url, timeout=10) as http:
        headers = {"Authorization": f"Bearer {token}"}
        started = time.perf_counter()
        for _ in range(count):
            http.post("/v1/models/bc/predict", json={"inputs": [row]}, headers=headers).raise_for_status()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="extraction up to 2,000 queries, 15 s per run")
    args = parser.parse_args()
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout carries the JSON only
    with tempfile.TemporaryDirectory(prefix="mlwarden-bench-redteam-") as tmp:
        options, row = _workspace(Path(tmp))
        seconds, report, code = _red_team(options, Path(tmp) / "report")
        baseline = _plain(options, row, report["requests"])
    print(json.dumps({
        "seconds_default_suites": round(seconds, 2),
        "target_seconds": 120,
        "suites": {s["suite"]: round(s["seconds"], 2) for s in report["suites"]},
        "requests": report["requests"],
        "exit_code": code,
        "findings": report["findings_by_severity"],
        "baseline_seconds_same_requests_plain": round(baseline, 2),
        "note": "access waits up to 20 s for the gateway's 10 s window summary of unauthenticated refusals",
        "extraction_fidelity": _fidelity(quick=args.quick),
    }))  # fmt: skip


def _fidelity(*, quick: bool) -> dict[str, Any]:
    """bench/redteam_attacks.py's extraction figures: fidelity at 500, 2,000, 10,000 queries, per rate limit."""
    sys.path.insert(0, str(Path(__file__).parent))
    from redteam_attacks import measure

    found = measure(2_000 if quick else 10_000, 15.0 if quick else 30.0)
    return {"by_rate_limit": found["extraction"], "baseline_true_labels": found["baseline_true_labels"],
            "limits": found["limits"], "ml_suites": found["suites"]}  # fmt: skip


if __name__ == "__main__":
    main()
