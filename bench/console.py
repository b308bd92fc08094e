"""Console benchmark: page render p95 on a large ledger (overview, a model page, ledger searches).

Pages are rendered through the app in process (Starlette's test client: routing, the session and
token checks, the queries and the template; no socket), each ``--requests`` times after a warm-up.
``page_p95_ms_1m`` is the slowest page's p95 (the goal: at most 150 ms on a 1,000,000-entry ledger).

Baselines, measured in the same run, same app, same client: ``baseline_json_p95_ms`` (``/healthz``,
a bare JSON route) and ``baseline_static_p95_ms`` (a vendored static file under ``/ui/static``).

``entry_with_proof`` is an entry's page (proven against the signed head, its audit path, a recorded
read); ``overview_activity_uncached_p95_ms`` is the activity chart's query alone, without the 2 s
cache the overview keeps (what one view in two seconds pays).

The ledger (97 % predictions, 2 % denials, 1 % allowed reads, one model ``bc`` in production) is
generated once and kept under ``bench/results/`` (``--fresh`` rebuilds it). wip-audit's
``bench/million_ledger.py`` (a shared cached 1M ledger) replaces this generator once merged.

Usage: python bench/console.py [--entries N] [--requests N] [--quick] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.tokens import create_token
from mlwarden.ledger.entry import PreparedEntry
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.samples import breast_cancer_model
from mlwarden.web.activity import recent_activity
from mlwarden.workspace import init_workspace, open_workspace

RESULTS = Path(__file__).parent / "results"
BATCH = 20_000
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _entry(i: int) -> PreparedEntry:
    if i % 100 < 97:
        decision = str(uuid.UUID(int=i, version=4))
        return PreparedEntry.build(
            kind="prediction", subject="model:bc:1", principal=f"token:{i % 50:016x}",
            body={"decision_ids": [decision], "inputs": [[0.1 * (i % 10), 1.5, 2.5]], "outputs": [{"label": i % 2}],
                  "model": {"name": "bc", "version": 1}},
            refs=(decision,),
        )  # fmt: skip
    kind = "access.denied" if i % 100 < 99 else "access.allowed"
    return PreparedEntry.build(
        kind=kind, subject="ledger", principal=f"token:{i % 50:016x}",
        body={"decision": "deny" if kind == "access.denied" else "allow", "reason": "missing scope audit:read"},
    )  # fmt: skip


def build(home: Path, entries: int) -> tuple[WorkspaceOptions, str]:
    """A workspace with ``bc`` in production and ``entries`` more ledger entries; returns it and an admin token."""
    options = WorkspaceOptions.from_settings(Settings(database_url=None), home)
    token_file = home.parent / f"{home.name}.token"
    if home.exists() and token_file.exists():
        return options, token_file.read_text()
    shutil.rmtree(home, ignore_errors=True)
    sample = breast_cancer_model(home.parent / f"{home.name}-sample", name="bc", trees=5)
    init_workspace(options)
    ws = open_workspace(options)
    try:
        register_dataset(ws, name="breast-cancer-train", path=sample.train_csv, principal="alice")
        register_model(ws, name="bc", path=sample.onnx, card_path=sample.card, principal="alice")
        approve_and_promote(ws, "bc", 1, approver="bob")
        every = ["admin", "audit:read", "model:promote", "data:read", "data:write"]
        token, _ = create_token(ws, name="bench", scopes=every, principal="local:bench")
        started = time.perf_counter()
        for start in range(0, entries, BATCH):
            ws.log.append_many([_entry(i) for i in range(start, min(entries, start + BATCH))])
        ws.log.sign_head()
        print(f"generated {entries} entries in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    finally:
        ws.close()
    token_file.write_text(token)
    return options, token


def p95(samples: list[float]) -> float:
    return round(statistics.quantiles(samples, n=20)[18] * 1000, 2)


def measure(client: Any, path: str, requests: int, params: dict[str, str] | None = None) -> dict[str, float]:
    for _ in range(max(3, requests // 10)):
        client.get(path, params=params)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path, params=params)
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
    return {"p50_ms": round(statistics.median(times) * 1000, 2), "p95_ms": p95(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="20,000 entries, 30 requests per page")
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached ledger")
    args = parser.parse_args()
    entries, requests = (20_000, 30) if args.quick else (args.entries, args.requests)
    from starlette.testclient import TestClient

    from mlwarden.api.app import create_app

    RESULTS.mkdir(parents=True, exist_ok=True)
    home = RESULTS / f"console-ledger-{entries}"
    if args.fresh:
        shutil.rmtree(home, ignore_errors=True)
    options, token = build(home, entries)
    settings = Settings(database_url=None, rate_limit=0, gc_freeze=False)
    with tempfile.TemporaryDirectory(), TestClient(create_app(options, settings), follow_redirects=False) as client:
        csrf = CSRF.search(client.get("/ui/signin").text)
        if csrf is None:
            raise SystemExit("no sign-in form")
        if client.post("/ui/signin", data={"csrf": csrf.group(1), "token": token}).status_code != 303:
            raise SystemExit("sign-in failed")
        pages = {
            "overview": measure(client, "/ui/", requests),
            "model": measure(client, "/ui/models/bc", requests),
            "ledger_newest": measure(client, "/ui/ledger", requests),
            "ledger_kind_prediction": measure(client, "/ui/ledger", requests, {"kind": "prediction"}),
            "ledger_kind_denied": measure(client, "/ui/ledger", requests, {"kind": "access.denied"}),
            "ledger_deep_page": measure(client, "/ui/ledger", requests, {"kind": "prediction", "before": "1000"}),
        }
        pages["entry_with_proof"] = measure(client, "/ui/ledger/500000", requests)
        ws = client.app.state.gateway.ws  # type: ignore[attr-defined]
        uncached = []
        for _ in range(requests):
            started = time.perf_counter()
            recent_activity(ws, max_age=0)
            uncached.append(time.perf_counter() - started)
        baseline_json = measure(client, "/healthz", requests)
        baseline_static = measure(client, "/ui/static/console.css", requests)
        size = client.app.state.gateway.ws.log.size()  # type: ignore[attr-defined]
    slowest = max(pages, key=lambda k: pages[k]["p95_ms"])
    print(json.dumps({
        "bench": "console", "ledger_entries": size, "requests_per_page": requests,
        "page_p95_ms_1m" if entries >= 1_000_000 else "page_p95_ms": pages[slowest]["p95_ms"], "slowest_page": slowest,
        "pages": pages, "overview_activity_uncached_p95_ms": p95(uncached),
        "baseline_json_p95_ms": baseline_json["p95_ms"], "baseline_static_p95_ms": baseline_static["p95_ms"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
