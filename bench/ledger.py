"""Ledger benchmark: durable appends (1 and 64 callers, in process and through serve's writer), verify, proofs.

Appends: ``appends_per_s_c1`` / ``appends_per_s_c64`` are threads calling ``Log.append``
(the in-process group commit) with the inputs and outputs in the entry (version 1);
``appends_per_s_c64_encrypted`` is the same, but each entry is a version-2 prediction recorded
as the product records one in process (``runtime.predict``): a ``pending_prediction`` handed to
``Log.append_many``, its body rendered and its inputs and outputs sealed by the group commit's
prepare stage with the rest of its batch while the previous batch commits (salted commitments in
the entry, AES-256-GCM payload rows written in the entry's transaction), under keys of their own
(rows without subject: derived from the day key and a random share per row, the costlier case)
or, for ``appends_per_s_c64_encrypted_subjects``, under the keys of 1,000 subjects;
``appends_per_s_c64_predictions_v1`` appends the same predictions as recorded before issue 12
(inputs and outputs in the body, the decision id as reference): the like-for-like baseline.
Decision ids are the product's own (time-ordered UUIDv7, as the gateway makes them).
``appends_per_s_sequencer_c64`` is 64 concurrent asyncio
callers over ``--connections`` sockets to the ledger writer process that ``serve`` runs
(one process for the callers, one for the writer, as gateway workers and their writer);
``appends_per_s_sequencer_c64_encrypted`` seals in the callers' process, as a gateway worker does.

The four in-process c64 cases run interleaved: a warm-up round, then ``--rounds`` rounds of all
four (default 5; 9 shorter ones with ``--quick``), each round starting with the next case; each
key is the median of its rounds, beside ``appends_per_s_runs`` (every round) and
``cpu_us_per_append`` (process CPU per append, median).

Prints one JSON object. Baselines, measured in the same run on the same disk:
* ``baseline_commit_per_insert_per_s``: plain sqlite3 (WAL, synchronous=FULL), one commit per
  insert of a row of the same size as a ledger entry;
* ``baseline_sha256_entries_per_s``: hashlib.sha256 over the same entry bytes, in memory.

Usage: python bench/ledger.py [--quick] [--rounds N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

from mlwarden.cli.ledger_writer import WriterSupervisor
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.ledger.entry import PreparedEntry
from mlwarden.ledger.writer_client import WriterClient
from mlwarden.runtime.decision_ids import decision_ids
from mlwarden.runtime.predict import prediction_record
from mlwarden.subjects.leader_sealing import pending_prediction
from mlwarden.subjects.sealing import seal_rows
from mlwarden.workspace import Workspace, init_workspace, open_workspace

BODY: dict[str, Any] = {
    "request_id": "4f1c2a9e-1d7b-4c1e-9a55-0d6b3f2e8c11",
    "inputs": {"age": 41, "income": 52000.5, "region": "north", "tenure_months": 17},
    "outputs": {"label": 1, "score": 0.8125},
    "model": {"name": "credit-risk", "version": 3},
}


def _workspace(root: Path, name: str) -> Workspace:
    options = WorkspaceOptions.from_settings(Settings(database_url=None), root / name)
    init_workspace(options)
    return open_workspace(options)


class Rate(NamedTuple):
    appends_per_s: float
    cpu_us: float
    """The process's CPU time per append (every thread: callers, the group commit's leader, SQLite)."""


def _threaded(threads: int, total: int, append: Callable[[int, int], object]) -> Rate:
    """``threads`` threads each calling ``append(thread, i)`` for its share of ``total``, timed from one barrier."""
    per_thread = total // threads
    barrier = threading.Barrier(threads + 1)

    def worker(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            append(t, i)

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(worker, t) for t in range(threads)]
        barrier.wait()
        start, cpu = time.perf_counter(), time.process_time()
        for f in futures:
            f.result()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    done = per_thread * threads
    return Rate(done / elapsed, cpu / done * 1e6)


def _append_rate(ws: Workspace, threads: int, total: int) -> Rate:
    """``Log.append`` of a version-1 body (the inputs and outputs in the entry), no references."""

    def append(t: int, i: int) -> None:
        ws.log.append(kind="prediction", subject=f"model:credit-risk:{t}", body={**BODY, "n": i}, principal="token:svc")

    return _threaded(threads, total, append)


MODEL_ROW = {"name": "credit-risk", "version": 3, "sha256": "ab" * 32}
SUBJECTS = 1000


def _warm_subjects(ws: Workspace) -> None:
    """The subjects' keys of the day exist (steady state), as after a gateway's first minutes."""
    names = [f"s-{i}" for i in range(SUBJECTS)]
    seal_rows(ws, [f"warm-{i}" for i in range(SUBJECTS)], [BODY["inputs"]] * SUBJECTS, [BODY["outputs"]] * SUBJECTS,
              names)  # fmt: skip


def _encrypted_rate(ws: Workspace, threads: int, total: int, *, subjects: bool) -> Rate:
    """As :func:`_append_rate`, each entry a sealed prediction (seal + commitments + payload rows)."""
    per_thread = total // threads

    def append(t: int, i: int) -> None:
        decision = decision_ids(1)[0]  # time-ordered, as the gateway's
        who = [f"s-{(t * per_thread + i) % SUBJECTS}"] if subjects else None
        entry = pending_prediction(ws, MODEL_ROW, [decision], [{**BODY["inputs"], "n": i}], [BODY["outputs"]], who,
                                   principal="token:svc")  # fmt: skip
        ws.log.append_many([entry])

    return _threaded(threads, total, append)


def _v1_prediction_rate(ws: Workspace, threads: int, total: int) -> Rate:
    """As :func:`_append_rate`, each entry a version-1 prediction as recorded before issue 12: the inputs and
    outputs in the body, its decision id as reference (what :func:`_encrypted_rate` seals instead)."""

    def append(t: int, i: int) -> None:
        decision = decision_ids(1)[0]
        body = {**MODEL_ROW, "decision_ids": [decision], "inputs": [{**BODY["inputs"], "n": i}],
                "outputs": [BODY["outputs"]]}  # fmt: skip
        ws.log.append_many([PreparedEntry.build(kind="prediction", subject="model:credit-risk:3",
                                                principal="token:svc", body=body, refs=(decision,))])  # fmt: skip

    return _threaded(threads, total, append)


def _interleaved(cases: dict[str, Callable[[int], Rate]], rounds: int, entries: int) -> dict[str, list[Rate]]:
    """Each case's rate over ``rounds`` rounds of every case in turn, after one warm-up tenth-size round.

    Interleaving puts the cases under the same conditions (the machine's load, the disk's state,
    the CPU's clock) so their ratio is not the drift between a first and a last measurement; each
    round starts with the next case, so none is always first; the warm-up takes every workspace's
    first-append costs (empty pages, caches, the keys of the day) out of the figures. The caller
    reports medians.
    """
    for case in cases.values():
        case(max(64, entries // 10))
    names = list(cases)
    runs: dict[str, list[Rate]] = {name: [] for name in cases}
    for k in range(rounds):
        for name in names[k % len(names) :] + names[: k % len(names)]:
            runs[name].append(cases[name](entries))
    return runs


def _sequencer_rate(
    root: Path, callers: int, connections: int, total: int, *, encrypted: bool = False
) -> tuple[float, float]:
    """Appends/s through a ledger writer process, and the mean entries per writer commit.

    ``encrypted``: each entry a sealed prediction, sealed in the callers' process (as a gateway
    worker does) and carried with its payload rows over the socket.
    """
    name = "sequencer-encrypted" if encrypted else "sequencer"
    home = root / name
    sealer = _workspace(root, name)
    os.environ["MLWARDEN_HOME"] = str(home)
    writer = WriterSupervisor(home / "writer.sock", log_fd=sys.stderr.fileno()).start()  # stdout: one JSON object
    per_caller = total // callers

    async def run() -> float:
        clients = [WriterClient(writer.socket_path) for _ in range(connections)]

        async def caller(t: int) -> None:
            client = clients[t % connections]
            for i in range(per_caller):
                if encrypted:
                    decision = decision_ids(1)[0]
                    sealed = seal_rows(sealer, [decision], [{**BODY["inputs"], "n": i}], [BODY["outputs"]])
                    entry = prediction_record(MODEL_ROW, [decision], sealed, principal="token:svc")
                else:
                    entry = PreparedEntry.build(
                        kind="prediction", subject=f"model:credit-risk:{t}", principal="token:svc",
                        body={**BODY, "n": i},
                    )  # fmt: skip
                await client.append(entry)

        await caller(0)  # connect every client before the clock starts
        for client in clients[1:]:
            await client.ready()
        start = time.perf_counter()
        await asyncio.gather(*(caller(t) for t in range(callers)))
        elapsed = time.perf_counter() - start
        for client in clients:
            client.close()
        return elapsed

    try:
        elapsed = asyncio.run(run())
    finally:
        writer.stop()
        sealer.close()
    ws = open_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), home))
    try:
        appended = ws.log.size()
        if not ws.log.verify().ok:
            raise SystemExit("the sequencer's log does not verify")
    finally:
        ws.close()
    return per_caller * callers / elapsed, appended


def _baseline_commit_per_insert(root: Path, sample: bytes, total: int) -> float:
    db = sqlite3.connect(root / "baseline.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE log (idx INTEGER PRIMARY KEY, leaf_hash BLOB NOT NULL, entry TEXT NOT NULL)")
    text = sample.decode()
    leaf = hashlib.sha256(sample).digest()
    start = time.perf_counter()
    for i in range(total):
        db.execute("BEGIN")
        db.execute("INSERT INTO log VALUES (?, ?, ?)", (i, leaf, text))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return total / elapsed


def _bulk_fill(ws: Workspace, total: int, chunk: int = 50_000) -> None:
    done = ws.log.size()
    while done < total:
        n = min(chunk, total - done)
        ws.log.append_many(
            [
                PreparedEntry.build(
                    kind="prediction",
                    subject="model:credit-risk:3",
                    principal="token:svc",
                    body={**BODY, "n": done + i},
                )
                for i in range(n)
            ]
        )
        done += n
        print(f"  filled {done:,}/{total:,}", file=sys.stderr)


def _verify_rates(ws: Workspace) -> tuple[float, float, int]:
    start = time.perf_counter()
    report = ws.log.verify()
    verify_s = time.perf_counter() - start
    if not report.ok:
        raise SystemExit(f"benchmark log does not verify: {report.finding}")
    texts = [t for _i, t, _h in ws.log.iter_rows()]
    sha = hashlib.sha256
    start = time.perf_counter()
    for t in texts:
        sha(t).digest()
    sha_s = time.perf_counter() - start
    return report.size / verify_s, len(texts) / sha_s, report.size


def _proof_ms(ws: Workspace, samples: int) -> float:
    size = ws.log.size()
    rng = random.Random(7)
    for _ in range(20):
        ws.log.inclusion_proof(rng.randrange(size))
    times = []
    for _ in range(samples):
        index = rng.randrange(size)
        start = time.perf_counter()
        ws.log.inclusion_proof(index)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs; finishes within 60 s on 2 cores")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the benchmark databases")
    parser.add_argument("--proof-log-size", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds of the c64 cases (medians; 5, "
                        "or 9 with --quick)")  # fmt: skip
    parser.add_argument("--connections", type=int, default=4, help="sockets to the ledger writer (gateway workers)")
    args = parser.parse_args()
    c1_n, c64_n, base_n = (300, 3_200, 300) if args.quick else (1_000, 64_000, 1_000)
    rounds = args.rounds or (9 if args.quick else 5)
    root = Path(tempfile.mkdtemp(prefix="mlwarden-bench-", dir=args.dir))
    try:
        ws = _workspace(root, "appends")
        c1 = _append_rate(ws, 1, c1_n).appends_per_s
        v1_ws, sealed_ws, subjects_ws = (_workspace(root, name) for name in ("predictions-v1", "encrypted", "subjects"))
        _warm_subjects(subjects_ws)
        cases: dict[str, Callable[[int], Rate]] = {
            "c64": lambda n: _append_rate(ws, 64, n),
            "c64_encrypted": lambda n: _encrypted_rate(sealed_ws, 64, n, subjects=False),
            "c64_predictions_v1": lambda n: _v1_prediction_rate(v1_ws, 64, n),
            "c64_encrypted_subjects": lambda n: _encrypted_rate(subjects_ws, 64, n, subjects=True),
        }
        runs = _interleaved(cases, rounds, c64_n)
        c64, c64_encrypted, c64_v1, c64_subjects = (
            statistics.median(r.appends_per_s for r in runs[name]) for name in cases
        )
        for extra in (v1_ws, sealed_ws, subjects_ws):
            extra.close()
        seq_c64, _seq_size = _sequencer_rate(root, 64, args.connections, c64_n)
        seq_c64_encrypted, _ = _sequencer_rate(root, 64, args.connections, c64_n, encrypted=True)
        sample = ws.log.entry(ws.log.size() - 1).text.encode()
        ws.close()
        baseline = _baseline_commit_per_insert(root, sample, base_n)

        big = _workspace(root, "million")
        t0 = time.perf_counter()
        _bulk_fill(big, args.proof_log_size)
        fill_s = time.perf_counter() - t0
        verify_rate, sha_rate, verified = _verify_rates(big)
        proof_ms = _proof_ms(big, 200)
        cons_start = time.perf_counter()
        big.log.consistency_proof(args.proof_log_size // 3, args.proof_log_size)
        cons_ms = (time.perf_counter() - cons_start) * 1000
        big.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = {
        "appends_per_s_c1": round(c1, 1),
        "appends_per_s_c64": round(c64, 1),
        "rounds": rounds,
        "appends_per_s_runs": {name: [round(r.appends_per_s) for r in rates] for name, rates in runs.items()},
        "cpu_us_per_append": {
            name: round(statistics.median(r.cpu_us for r in rates), 1) for name, rates in runs.items()
        },
        "appends_per_s_c64_encrypted": round(c64_encrypted, 1),
        "c64_encrypted_vs_c64": round(c64_encrypted / c64, 3),
        "appends_per_s_c64_encrypted_subjects": round(c64_subjects, 1),
        "c64_encrypted_subjects_vs_c64": round(c64_subjects / c64, 3),
        "appends_per_s_c64_predictions_v1": round(c64_v1, 1),
        "c64_encrypted_vs_predictions_v1": round(c64_encrypted / c64_v1, 3),
        "c64_encrypted_subjects_vs_predictions_v1": round(c64_subjects / c64_v1, 3),
        "baseline_commit_per_insert_per_s": round(baseline, 1),
        "c64_vs_baseline": round(c64 / baseline, 2),
        "appends_per_s_sequencer_c64": round(seq_c64, 1),
        "sequencer_c64_vs_baseline": round(seq_c64 / baseline, 2),
        "appends_per_s_sequencer_c64_encrypted": round(seq_c64_encrypted, 1),
        "sequencer_c64_encrypted_vs_sequencer_c64": round(seq_c64_encrypted / seq_c64, 3),
        "sequencer_connections": args.connections,
        "c1_vs_baseline": round(c1 / baseline, 2),
        "verify_entries_per_s": round(verify_rate, 1),
        "baseline_sha256_entries_per_s": round(sha_rate, 1),
        "verify_vs_sha256": round(verify_rate / sha_rate, 3),
        "verified_entries": verified,
        "inclusion_proof_ms_1m": round(proof_ms, 4),
        "consistency_proof_ms_1m": round(cons_ms, 4),
        "proof_log_size": args.proof_log_size,
        "bulk_fill_entries_per_s": round(args.proof_log_size / fill_s, 1),
        "entry_bytes": len(sample),
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
