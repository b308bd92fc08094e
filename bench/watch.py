"""Watch (issue 13) in one command: detection throughput against a plain scan, and audit query latency.

    python bench/watch.py [--entries 1000000] [--cache bench/results/cache] [--repeat 5] [--latency]

* ``detect_entries_per_s`` / ``baseline_scan_entries_per_s`` / ``ratio``: ``bench/watch_detect.py``'s
  measurement (the real watcher with every built-in rule over a cached ledger of sealed
  predictions and mixed kinds, against reading and parsing the same entries with no rules,
  both in this run; the faster of two baseline scans, one before and one after, is the baseline);
  ``*_per_cpu_s`` / ``cpu_ratio``: the same per second of the process's CPU time (on a shared
  machine the wall-clock rates follow the other load; the 1-minute load average is reported);
* ``query_ms_1m``: ``bench/audit_query.py`` (filtered audit queries on the cached 1M-entry
  ledger of ``bench/million_ledger.py``), run as a child process, its ``query_ms_1m`` and baseline;
* ``--latency``: hook for ``bench/alert_latency.py`` (another helper's): when that file exists its
  JSON's ``alert_latency_p99_ms`` is added; without the file the key is null and ``latency`` says why.

Prints one JSON object. Targets: detect ≥ 100,000 entries/s and ≥ 0.5 × the baseline; queries p95 < 100 ms.
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


def latency(enabled: bool) -> tuple[Any, str]:
    """``alert_latency_p99_ms`` from ``bench/alert_latency.py`` when asked and present."""
    script = HERE / "alert_latency.py"
    if not enabled:
        return None, "not measured (pass --latency)"
    if not script.exists():
        return None, "bench/alert_latency.py is not in this tree"
    return _child_json(script).get("alert_latency_p99_ms"), "bench/alert_latency.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path, default=HERE / "results" / "cache")
    parser.add_argument("--repeat", type=int, default=5, help="repeats of each audit query")
    parser.add_argument("--latency", action="store_true", help="also run bench/alert_latency.py if present")
    args = parser.parse_args()
    structlog.configure(  # stdout carries only the result
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=lambda *_args: structlog.PrintLogger(sys.stderr),
    )
    result = detection(args.cache, args.entries)
    audit = _child_json(HERE / "audit_query.py", "--entries", str(args.entries), "--repeat", str(args.repeat))
    p99, source = latency(args.latency)
    result |= {
        "query_ms_1m": audit.get("query_ms_1m"),
        "query_baseline_ms": audit.get("baseline_ms"),
        "alert_latency_p99_ms": p99,
        "latency": source,
        "ledger": "detect: sqlite, bench/watch_detect.py's cached ledger (sealed v2 predictions, 500 entries/s of "
        "ledger time, three attack episodes); queries: bench/million_ledger.py",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
