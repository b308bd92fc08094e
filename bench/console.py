"""Console benchmark: page render p95 on a large ledger (overview, a model page, ledger searches).

Pages are rendered through the app in process (Starlette's test client: routing, the session and
token checks, the queries and the template; no socket), each ``--requests`` times after a warm-up.
``page_p95_ms_1m`` is the slowest page's p95 (the goal: at most 150 ms on a 1,000,000-entry ledger).

Baselines, measured in the same run, same app, same client: ``baseline_json_p95_ms`` (``/healthz``,
a bare JSON route) and ``baseline_static_p95_ms`` (a vendored static file under ``/ui/static``).

``entry_with_proof`` is an entry's page (proven against the signed head, its audit path, a recorded
read); ``overview_activity_uncached_p95_ms`` is the activity chart's query alone, without the 2 s
cache the overview keeps (what one view in two seconds pays).

The ledger is ``bench/million_ledger.py``'s shared cached one (mixed kinds over seven days), copied once
under ``bench/results/`` with ``bc`` registered and in production on top (``--fresh`` redoes the copy).
``search_function`` times the ledger search alone for one principal: the console's previous search (a
primary-key scan matching each entry's text, at most 5,000 rows a page; the baseline) against the
search over the audit index.

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
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import structlog
from sqlalchemy import select

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.tokens import create_token
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.samples import breast_cancer_model
from mlwarden.store.schema import ledger_entries
from mlwarden.web.activity import recent_activity
from mlwarden.web.ledger_search import PAGE_SIZE, LedgerFilter, search_entries
from mlwarden.workspace import open_workspace

sys.path.insert(0, str(Path(__file__).parents[1]))
from bench.million_ledger import ATTACKER, PRINCIPALS, million_ledger

RESULTS = Path(__file__).parent / "results"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
OLD_SCAN_BUDGET = 5_000


def build(entries: int, fresh: bool) -> tuple[WorkspaceOptions, str]:
    """A copy of the shared cached ledger (``bench/million_ledger.py``) with ``bc`` in production and an admin
    token on top; the copy is kept under ``bench/results/`` and reused (the shared cache is never changed)."""
    shared = million_ledger(entries, rebuild=False)
    home = RESULTS / f"console-{shared.paths.home.parent.name}" / "ws"
    token_file = home.parent / "token"
    if home.exists() and token_file.exists() and not fresh:
        return WorkspaceOptions.from_settings(Settings(database_url=None), home), token_file.read_text()
    shutil.rmtree(home.parent, ignore_errors=True)
    shutil.copytree(shared.paths.home, home)
    options = WorkspaceOptions.from_settings(Settings(database_url=None), home)
    sample = breast_cancer_model(home.parent / "sample", name="bc", trees=5)
    ws = open_workspace(options)
    try:
        register_dataset(ws, name="breast-cancer-train", path=sample.train_csv, principal="alice")
        register_model(ws, name="bc", path=sample.onnx, card_path=sample.card, principal="alice")
        approve_and_promote(ws, "bc", 1, approver="bob")
        every = ["admin", "audit:read", "model:promote", "data:read", "data:write"]
        token, _ = create_token(ws, name="bench", scopes=every, principal="local:bench")
        ws.log.sign_head()
    finally:
        ws.close()
    token_file.write_text(token)
    return options, token


def old_scan(ws: Any, principal: str) -> int:
    """The baseline: the console's previous principal search (the primary key newest first, each entry's
    text matched, at most 5,000 rows examined per page); the number of rows it found."""
    t = ledger_entries.c
    found = examined = 0
    with ws.engine.connect() as conn:
        for _idx, text in conn.execute(select(t.idx, t.entry).order_by(t.idx.desc()).limit(OLD_SCAN_BUDGET)):
            examined += 1
            if orjson.loads(text).get("principal") == principal:
                found += 1
                if found == PAGE_SIZE:
                    break
    return found


def timed(call: Any, requests: int) -> dict[str, float]:
    for _ in range(max(3, requests // 10)):
        call()
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return {"p50_ms": round(statistics.median(times) * 1000, 2), "p95_ms": p95(times)}


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


def _a_decision(options: WorkspaceOptions) -> str:
    """A decision id recorded in the middle of the ledger."""
    ws = open_workspace(options)
    try:
        middle = ws.log.size() // 2
        for index in range(middle, middle + 1000):
            ids = ws.log.entry(index).parse().body.get("decision_ids")
            if isinstance(ids, list) and ids:
                return str(ids[0])
    finally:
        ws.close()
    raise SystemExit("no decision recorded near the middle of the ledger")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="100,000 entries, 30 requests per page")
    parser.add_argument("--fresh", action="store_true", help="copy the shared ledger again")
    args = parser.parse_args()
    entries, requests = (100_000, 30) if args.quick else (args.entries, args.requests)
    structlog.configure(logger_factory=lambda *_args: structlog.PrintLogger(sys.stderr))  # stdout: the JSON only
    from starlette.testclient import TestClient

    from mlwarden.api.app import create_app

    RESULTS.mkdir(parents=True, exist_ok=True)
    options, token = build(entries, args.fresh)
    settings = Settings(database_url=None, rate_limit=0, gc_freeze=False)
    with tempfile.TemporaryDirectory(), TestClient(create_app(options, settings), follow_redirects=False) as client:
        csrf = CSRF.search(client.get("/ui/signin").text)
        if csrf is None:
            raise SystemExit("no sign-in form")
        if client.post("/ui/signin", data={"csrf": csrf.group(1), "token": token}).status_code != 303:
            raise SystemExit("sign-in failed")
        decision = _a_decision(options)
        pages = {
            "overview": measure(client, "/ui/", requests),
            "model": measure(client, "/ui/models/bc", requests),
            "ledger_newest": measure(client, "/ui/ledger", requests),
            "ledger_kind_prediction": measure(client, "/ui/ledger", requests, {"kind": "prediction"}),
            "ledger_kind_denied": measure(client, "/ui/ledger", requests, {"kind": "access.denied"}),
            "ledger_deep_page": measure(client, "/ui/ledger", requests, {"kind": "prediction", "before": "1000"}),
            "ledger_principal": measure(client, "/ui/ledger", requests, {"principal": PRINCIPALS[0]}),
            "ledger_status_403": measure(client, "/ui/ledger", requests, {"status": "403"}),
            "ledger_last_day": measure(client, "/ui/ledger", requests, {"since": "1d", "kind": "access.denied"}),
            "ledger_subject_prefix": measure(client, "/ui/ledger", requests, {"subject": "model:bc"}),
            "ledger_decision": measure(client, "/ui/ledger", requests, {"decision_id": decision}),
            "alerts": measure(client, "/ui/alerts", requests),
            "redteam": measure(client, "/ui/redteam", requests),
        }
        pages["entry_with_proof"] = measure(client, f"/ui/ledger/{entries // 2}", requests)
        ws = client.app.state.gateway.ws  # type: ignore[attr-defined]
        search = {}
        for label, who in (("common_principal", PRINCIPALS[0]), ("rare_principal", ATTACKER)):
            search[f"baseline_old_scan_{label}"] = timed(partial(old_scan, ws, who), requests)
            search[f"audit_index_{label}"] = timed(partial(search_entries, ws, LedgerFilter(principal=who)), requests)
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
        "pages": pages, "search_function": search, "overview_activity_uncached_p95_ms": p95(uncached),
        "baseline_json_p95_ms": baseline_json["p95_ms"], "baseline_static_p95_ms": baseline_static["p95_ms"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
