"""Watch (issue 13) in one command: detection throughput against a plain scan, and audit query latency.

    python bench/watch.py [--entries 1000000] [--cache bench/results/cache] [--repeat 5] [--no-latency]

* ``detect_entries_per_s`` / ``baseline_scan_entries_per_s`` / ``ratio``: ``bench/watch_detect.py``'s
  measurement (the real watcher with every built-in rule over a cached ledger of sealed
  predictions and mixed kinds, against reading and parsing the same entries with no rules,
  both in this run; the faster of two baseline scans, one before and one after, is the baseline);
  ``*_per_cpu_s`` / ``cpu_ratio``: the same per second of the process's CPU time (on a shared
  machine the wall-clock rates follow the other load; the 1-minute load average is reported);
* ``query_ms_1m``: ``bench/audit_query.py`` (filtered audit queries on the cached 1M-entry
  ledger of ``bench/million_ledger.py``), run as a child process, its ``query_ms_1m`` and baseline;
* ``alert_latency_p99_ms``: ``bench/alert_latency.py`` run as a child process (a real ``serve`` under
  about 500 predictions/s, its own watcher, a signed webhook to a real receiver: from the commit of
  a triggering entry to the receiver holding the alert), with its baseline (a bare signed POST);
  ``--no-latency`` skips it (about 50 s) and the key is null.

Prints one JSON object. Targets: detect ≥ 100,000 entries/s and ≥ 0.5 × the baseline; ``query_ms_1m`` (the
p95 of the filtered queries, in ms; ``query_ms_1m_p50`` beside it) ≤ 50; ``alert_latency_p99_ms`` ≤ 1,000.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mlwarden.workspace import open_workspace
from watch_detect import baseline_scan, cached_workspace, detect, rates, settle, watcher_opened

HERE = Path(__file__).resolve().parent
DETECT_TARGET = 100_000
RATIO_TARGET = 0.5
CHILD_TIMEOUT_S = 1800


def _child_json(script: Path, *args: str) -> dict[str, Any]:
    """Run another benchmark (bounded in time) and return the JSON object it printed last."""
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{script.name} failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    found = json.loads(lines[-1])
    if not isinstance(found, dict):
        raise SystemExit(f"{script.name} printed no JSON object")
    return found


def detection(cache: Path, entries: int) -> dict[str, Any]:
    """Baseline scan, watcher, baseline scan again, over the same cached ledger."""
    ws = open_workspace(cached_workspace(cache, entries))
    try:
        n = min(entries, ws.log.size())
        settle()
        load_before = round(os.getloadavg()[0], 2)
        before = baseline_scan(ws, n)
        rate, watcher = detect(ws, n)
        after = baseline_scan(ws, n)
    finally:
        ws.close()
    measured = rates(rate, before, after)
    return {
        "entries": n,
        **measured,
        "meets_detect_target": rate.wall >= DETECT_TARGET and measured["ratio"] >= RATIO_TARGET,
        "load_average_1m_before": load_before,
        "payload_entries_opened": watcher_opened(watcher),
        "alerts_found_by_rule": {f"{r}/{s}": k for (r, s), k in sorted(watcher.found.items())},
    }


def _quantile(found: Any, name: str) -> Any:
    """``found[name]`` when ``bench/audit_query.py`` gave its quantiles as an object, else ``found`` itself."""
    return found.get(name) if isinstance(found, dict) else found


def latency(enabled: bool) -> tuple[dict[str, Any], str]:
    """``bench/alert_latency.py``'s figures (unless skipped)."""
    if not enabled:
        return {}, "not measured (--no-latency)"
    return _child_json(HERE / "alert_latency.py"), "bench/alert_latency.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path, default=HERE / "results" / "cache")
    parser.add_argument("--repeat", type=int, default=5, help="repeats of each audit query")
    parser.add_argument("--no-latency", action="store_true", help="skip bench/alert_latency.py (about 50 s)")
    args = parser.parse_args()
    structlog.configure(  # stdout carries only the result
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=lambda *_args: structlog.PrintLogger(sys.stderr),
    )
    result = detection(args.cache, args.entries)
    audit = _child_json(HERE / "audit_query.py", "--entries", str(args.entries), "--repeat", str(args.repeat))
    alerts, source = latency(not args.no_latency)
    result |= {
        "query_ms_1m": _quantile(audit.get("query_ms_1m"), "p95"),
        "query_ms_1m_p50": _quantile(audit.get("query_ms_1m"), "p50"),
        "query_baseline_ms": audit.get("baseline_ms"),
        "alert_latency_p99_ms": alerts.get("alert_latency_p99_ms"),
        "alert_latency_baseline_bare_post_p99_ms": alerts.get("baseline_bare_post_p99_ms"),
        "alert_latency_predictions_per_s": alerts.get("predictions_per_s"),
        "latency": source,
        "ledger": "detect: sqlite, bench/watch_detect.py's cached ledger (sealed v2 predictions, 500 entries/s of "
        "ledger time, three attack episodes); queries: bench/million_ledger.py",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
