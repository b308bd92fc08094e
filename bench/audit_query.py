"""Audit query latency on a 1,000,000-entry ledger: ``query_ms_1m`` (p50/p95 over filtered queries).

Each query is ``mlwarden.audit.query.query_page`` as ``audit query`` and ``GET
/v1/audit/entries`` run it: the indexed SELECT, then every row parsed and checked against
the filter from its own text. Filters: a kind, a principal (1% of traffic), a subject prefix,
a model version, a decision id, a rejection status, the last hour, a kind+principal+time
combination, and later pages (``since_index`` deep in the log); 100 rows a page.

Baseline, same run, same database: ``baseline_ms``, a bare ``SELECT idx, entry`` by index
range (sqlite3, no filter, no parsing) reading as many rows as each query returned.
The ledger comes from ``bench/million_ledger.py`` (built on first use, then cached).

Usage: python bench/audit_query.py [--entries N] [--repeat R]   (prints one JSON object)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.million_ledger import ATTACKER, million_ledger

from mlwarden.audit.filters import AuditFilter
from mlwarden.audit.query import query_page
from mlwarden.workspace import open_workspace

TARGET_MS = 50.0
T = TypeVar("T")


def _filters(db: sqlite3.Connection, entries: int) -> dict[str, AuditFilter]:
    last_time = db.execute("SELECT entry_time FROM ledger_entries WHERE idx = ?", (entries - 1,)).fetchone()[0]
    end = datetime.fromisoformat(last_time.replace("Z", "+00:00")).astimezone(UTC)
    decision = db.execute("SELECT ref FROM ledger_refs WHERE idx >= ? LIMIT 1", (entries // 2,)).fetchone()[0]
    return {
        "kind": AuditFilter(kinds=("access.denied",)),
        "principal": AuditFilter(principal=ATTACKER),
        "subject_prefix": AuditFilter(subject_prefix="model:fraud"),
        "model": AuditFilter(model="churn:2"),
        "decision": AuditFilter(decision=decision),
        "status": AuditFilter(status=429),
        "last_hour": AuditFilter(since=end - timedelta(hours=1)),
        "kind_principal_since": AuditFilter(
            kinds=("prediction",), principal="token:svc07", since=end - timedelta(days=2)
        ),
        "deep_page_kind": AuditFilter(kinds=("feedback",), since_index=entries * 9 // 10),
        "deep_page_status_principal": AuditFilter(status=422, principal="token:svc11", since_index=entries // 2),
    }


def _timed(fn: Callable[[], T], repeat: int) -> tuple[list[float], T]:
    times: list[float] = []
    result = fn()
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return times, result


def _bare_select(db: sqlite3.Connection, first: int, count: int) -> list[tuple[int, str]]:
    """The baseline: the same number of rows by index range, no filter, no parsing."""
    return db.execute(
        "SELECT idx, entry FROM ledger_entries WHERE idx >= ? ORDER BY idx LIMIT ?", (first, count)
    ).fetchall()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    options = million_ledger(args.entries)
    ws = open_workspace(options, check=False)
    db = sqlite3.connect(f"file:{options.paths.database}?mode=ro", uri=True)
    per_query: dict[str, dict[str, float | int]] = {}
    all_q: list[float] = []
    all_b: list[float] = []
    try:
        for name, flt in _filters(db, args.entries).items():
            times, page = _timed(partial(query_page, ws.engine, flt), args.repeat)  # the first, untimed, warms
            rows = page.rows
            bare = (rows[0].index if rows else 0, len(rows))
            base, _ = _timed(partial(_bare_select, db, *bare), args.repeat)
            per_query[name] = {"rows": len(rows), "p50_ms": round(statistics.median(times), 3),
                               "baseline_p50_ms": round(statistics.median(base), 3)}  # fmt: skip
            all_q += times
            all_b += base
    finally:
        db.close()
        ws.close()
    p50, p95 = _pct(all_q, 0.5), _pct(all_q, 0.95)
    print(json.dumps({
        "query_ms_1m": {"p50": round(p50, 3), "p95": round(p95, 3)},
        "baseline_ms": {"p50": round(_pct(all_b, 0.5), 3), "p95": round(_pct(all_b, 0.95), 3)},
        "target_ms": TARGET_MS,
        "meets_target": p95 <= TARGET_MS,
        "entries": args.entries,
        "repeat": args.repeat,
        "queries": per_query,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
