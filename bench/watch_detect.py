"""Detection throughput: every built-in rule over a ledger of mixed kinds, against a plain read-and-parse scan.

    python bench/watch_detect.py [--entries 1000000] [--cache bench/results/cache]

Builds once (cached under ``--cache``, git-ignored, by size) a workspace whose ledger holds
``--entries`` entries: sealed predictions (version 2, inputs and outputs encrypted) from 20 principals on
the sample model, feedback, denials, rejection summaries, allowed reads, token and gate
entries, plus a few scripted attacks. Then, in the same run:

* ``baseline_scan_entries_per_s``: read every entry in index order (same query and chunking
  as the watcher) and parse it (JSON and time), no rules;
* ``detect_entries_per_s``: the real watcher (all built-in rules, sampled payload opening,
  one transaction per 5,000 entries moving its cursor and recording alerts) over the same entries.

Both are also given per second of CPU time (``*_per_cpu_s``), which other load on a shared
machine does not move. Prints one JSON object. Target: detect ≥ 100,000 entries/s and ≥ 0.5 × the baseline.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import structlog

import mlwarden.ledger.log as ledger_log
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.ledger.entry import PreparedEntry
from mlwarden.monitor.references import ReferenceBook
from mlwarden.monitor.rules import RuleSet, build_rules
from mlwarden.monitor.rules_file import RulesConfig
from mlwarden.monitor.sampling import workspace_opener
from mlwarden.monitor.stream import read_entry
from mlwarden.monitor.watcher import Watcher, read_rows
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.runtime.predict import prediction_record
from mlwarden.samples import breast_cancer_model
from mlwarden.subjects.sealing import seal_rows
from mlwarden.workspace import Workspace, init_workspace, open_workspace

CHUNK = 5000
RATE = 500
"""Entries per second of ledger time: a busy gateway (each group commit of RATE entries is one second)."""
ATTACKS = (0.2, 0.5, 0.8)
"""Where (as a fraction of the ledger) the scripted attack episodes start."""
EPISODE = 30
"""Seconds of ledger time an attack episode lasts."""
PRINCIPALS = [f"token:svc{i:02d}" for i in range(20)]


def _build(root: Path, entries: int) -> WorkspaceOptions:
    sample = breast_cancer_model(root / "art", trees=5)
    options = WorkspaceOptions.from_settings(Settings(database_url=None), root / "ws")
    init_workspace(options)
    ws = open_workspace(options)
    try:
        found = register_dataset(ws, name="breast-cancer-train", path=sample.train_csv, principal="bench")
        register_model(ws, name="bc", path=sample.onnx, card_path=sample.card, principal="bench",
                       datasets=[f"breast-cancer-train@sha256:{found['sha256']}"])  # fmt: skip
        approve_and_promote(ws, "bc", 1, approver="reviewer")
        train = np.loadtxt(sample.train_csv, delimiter=",", skiprows=1)
        _fill(ws, train[:, :-1], train[:, -1], entries)
    finally:
        ws.close()
    return options


def _fill(ws: Workspace, x: np.ndarray, y: np.ndarray, entries: int) -> None:
    """Normal traffic from 20 services at RATE entries/s, with three short attack episodes among it.

    Normal: predictions on training-like rows, allowed reads, a few rejections and denials
    spread over every principal, 401 summaries from many sources, feedback at a low rate.
    Each episode (EPISODE seconds of ledger time): an extraction (uniform rows over the feature
    ranges from one service), a denial probe, a 401 burst from one source, one admin token.
    """
    rng = random.Random(7)
    row = {"name": "bc", "version": 1, "sha256": "0" * 64}
    low, high = x.min(axis=0), x.max(axis=0)
    starts = [int(entries * f) for f in ATTACKS]
    start = datetime.now(UTC) - timedelta(seconds=entries / RATE + 60)
    real_clock = ledger_log.utc_now
    try:
        while (made := ws.log.size()) < entries:
            moment = start + timedelta(seconds=made / RATE)
            ledger_log.utc_now = lambda m=moment: m.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # type: ignore[misc]
            inside = [(made - s) // RATE for s in starts if 0 <= made - s < EPISODE * RATE]
            second = inside[0] if inside else EPISODE
            attack = second < EPISODE
            batch = [_normal(ws, rng, row, x, y, low, high, attack) for _ in range(min(RATE, entries - made))]
            if attack:
                batch += _attack(rng, second)
            ws.log.append_many(batch[: entries - made])
            if made % 20_000 < RATE:
                print(f"built {ws.log.size()} entries", file=sys.stderr, flush=True)
    finally:
        ledger_log.utc_now = real_clock  # type: ignore[misc]


def _normal(ws: Workspace, rng: random.Random, row: dict[str, Any], x: np.ndarray, y: np.ndarray,
            low: np.ndarray, high: np.ndarray, attack: bool) -> PreparedEntry:  # fmt: skip
    roll = rng.random()
    who = rng.choice(PRINCIPALS)
    if roll < 0.60:
        n = rng.randint(1, 4)
        thief = attack and who == PRINCIPALS[0]
        rows = [[float(v) for v in (np.array([rng.uniform(a, b) for a, b in zip(low, high, strict=True)])
                 if thief else x[rng.randrange(len(x))])] for _ in range(n)]  # fmt: skip
        outputs = [{"label": int(y[rng.randrange(len(y))]), "probabilities": [0.5, 0.5]} for _ in range(n)]
        ids = [str(uuid.uuid4()) for _ in range(n)]
        return prediction_record(row, ids, seal_rows(ws, ids, rows, outputs), principal=who)
    if roll < 0.90:
        return _entry("access.allowed", "model:bc", who, {"allow": True, "reason": "scope inference:read"})
    if roll < 0.96:
        return _entry("request.rejected", "model:bc", who, {"reason": "invalid input", "status": 422})
    if roll < 0.963:
        return _entry("access.denied", f"model:m{rng.randrange(50)}", who, {"allow": False})
    if roll < 0.983:
        return _entry("feedback", "model:bc:1", who, {"feedback_id": str(uuid.uuid4()), "kind": "wrong"})
    if roll < 0.988:
        claimed = {f"tok{rng.randrange(10_000)}": 1 for _ in range(3)}
        return _entry("request.rejected_summary", "requests:unauthenticated", "system:gateway",
                      {"count": 3, "statuses": {"401": 3}, "claimed_principals": claimed,
                       "sources": {f"198.51.100.{rng.randrange(256)}": 3}})  # fmt: skip
    if roll < 0.989:
        return _entry("token.created", f"token:{uuid.uuid4().hex[:12]}", "admin", {"scopes": ["inference:read"]})
    return _entry("model.registered", "model:bc:1", "admin", {"note": "governance"})


def _attack(rng: random.Random, second: int) -> list[PreparedEntry]:
    """One second of an attack episode: a denial probe, a 401 burst from one source, once an admin token."""
    out = [_entry("access.denied", f"model:m{rng.randrange(50)}", "token:probe", {"allow": False})]
    if second < 8:  # 40 failed authentications in 8 s: two bursts per key
        out.append(_entry("request.rejected_summary", "requests:unauthenticated", "system:gateway",
                          {"count": 5, "statuses": {"401": 5}, "claimed_principals": {"tok-stolen": 5},
                           "sources": {"203.0.113.66": 5}}))  # fmt: skip
    if second == EPISODE // 2:
        out.append(_entry("token.created", f"token:{uuid.uuid4().hex[:12]}", "intruder", {"scopes": ["admin"]}))
    return out


def _entry(kind: str, subject: str, principal: str, body: dict[str, Any]) -> PreparedEntry:
    return PreparedEntry.build(kind=kind, subject=subject, principal=principal, body=body)


def cached_workspace(cache: Path, entries: int) -> WorkspaceOptions:
    root = cache / f"watch-{entries}"
    done = root / "done"
    if not done.exists():
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        _build(root, entries)
        done.write_text("ok")
    return WorkspaceOptions.from_settings(Settings(database_url=None), root / "ws")


def settle() -> None:
    """Collect, then move everything alive (imports, workspace, engine) out of the GC's way, for both measurements.

    A long-running watcher process does the same once after start-up; without it each full
    collection walks every object the process holds and costs both sides about a third.
    """
    gc.collect()
    gc.freeze()


@dataclass(frozen=True)
class Rate:
    """Entries per second of wall time, and per second of this process's CPU time (user + system).

    On a machine shared with other work the wall rate follows the load; the CPU rate is what the
    work itself costs (the watcher is one thread: on an idle machine the two agree).
    """

    wall: float
    cpu: float


class _Timer:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rate(self, entries: int) -> Rate:
        return Rate(entries / (time.perf_counter() - self.wall), entries / (time.process_time() - self.cpu))


def baseline_scan(ws: Workspace, entries: int) -> Rate:
    """Read and parse every entry (the watcher's query, chunks and parser), no rules."""
    timer = _Timer()
    parsed = 0
    for start in range(0, entries, CHUNK):
        with ws.engine.connect() as conn:
            rows = read_rows(conn, start, min(entries, start + CHUNK))
        for idx, _kind, entry_text in rows:
            read_entry(idx, entry_text)
            parsed += 1
    return timer.rate(parsed)


def detect(ws: Workspace, entries: int) -> tuple[Rate, Watcher]:
    """The real watcher, every built-in rule, a fresh cursor, over the first ``entries``."""

    def rules() -> RuleSet:
        return build_rules(RulesConfig.defaults(), ReferenceBook.of_workspace(ws), workspace_opener(ws))

    watcher = Watcher(ws, rules, name=f"bench-{uuid.uuid4().hex[:8]}", batch=CHUNK)
    watcher.rebuild()
    timer = _Timer()
    while watcher.position < entries:
        watcher.batch = min(CHUNK, entries - watcher.position)
        watcher.tick()
    return timer.rate(watcher.position), watcher


def rates(rate: Rate, before: Rate, after: Rate) -> dict[str, Any]:
    """The measurement's keys: wall-clock rates (the targets) and CPU-time rates beside them."""
    base, base_cpu = max(before.wall, after.wall), max(before.cpu, after.cpu)
    return {
        "detect_entries_per_s": round(rate.wall),
        "baseline_scan_entries_per_s": round(base),
        "ratio": round(rate.wall / base, 3),
        "baseline_runs_entries_per_s": [round(before.wall), round(after.wall)],
        "detect_entries_per_cpu_s": round(rate.cpu),
        "baseline_scan_entries_per_cpu_s": round(base_cpu),
        "cpu_ratio": round(rate.cpu / base_cpu, 3),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }


def watcher_opened(watcher: Watcher) -> int:
    """How many prediction entries the watcher decrypted (the sampling budget at work)."""
    rules = watcher.rules
    return 0 if rules is None or rules.sampler is None else rules.sampler.opened_entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path, default=Path(__file__).parent / "results" / "cache")
    args = parser.parse_args()
    structlog.configure(  # stdout carries only the result; alerts are counted in it
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=lambda *_args: structlog.PrintLogger(sys.stderr),
    )
    options = cached_workspace(args.cache, args.entries)
    ws = open_workspace(options)
    try:
        entries = min(args.entries, ws.log.size())
        settle()
        before = baseline_scan(ws, entries)
        rate, watcher = detect(ws, entries)
        after = baseline_scan(ws, entries)  # the machine's load drifts: the faster of the two is the baseline
    finally:
        ws.close()
    print(json.dumps({"entries": entries, **rates(rate, before, after),
        "payload_entries_opened": watcher_opened(watcher),
        "alerts_found_by_rule": {f"{r}/{s}": n for (r, s), n in sorted(watcher.found.items())},
        "ledger": "sqlite, generated by this script (cached); predictions sealed (v2)",
    }))  # fmt: skip


if __name__ == "__main__":
    main()
