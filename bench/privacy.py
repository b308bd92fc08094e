"""Privacy benchmark: the cost of sealing a prediction's rows, against the unencrypted path, per row.

Prints one JSON object (microseconds per row, medians of several batches). Baselines, in the
same run: ``baseline_canonical_us_per_row`` (RFC 8785 canonical JSON of the row, what an entry
that holds the inputs already pays) and ``baseline_insert_us_per_row`` (inserting a row of the
same size into a plain table of the same SQLite database). Database work is timed inside the
write transaction, without its commit: payload rows share the ledger entry's (group) commit.

* ``seal_crypto_us_per_row``: salt, commitment, AES-256-GCM with warm (cached) keys, no database;
* ``seal_subject_us_per_row``: :func:`seal` + :func:`store_payloads` for rows naming subjects
  whose keys of the day exist (the steady state);
* ``seal_own_keys_us_per_row``: rows without subject: each payload gets a new data key, wrapped
  and stored inline in its row (the default for predictions that name no subject);
* ``open_us_per_row``: :func:`open_many` (bulk reads, unwraps each key once, decrypts, checks);
* ``seal_rows_own_us_per_decision`` / ``seal_rows_subject_us_per_decision``: the prediction path,
  :func:`seal_rows` for one decision at a time (inputs and outputs, one ``privacy_rows`` row), keys
  of the day cached: without subject (keys derived from the day key and the row's share), with one.

Usage: python bench/privacy.py [--quick] [--rows N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, LargeBinary, MetaData, String, Table

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.ledger.canonical import canonical_json
from mlwarden.privacy import (
    KeyRing,
    LocalKek,
    PayloadClaim,
    PayloadRequest,
    open_many,
    seal,
    seal_with_keys,
    store_payloads,
)
from mlwarden.store.engine import write_transaction
from mlwarden.subjects.sealing import seal_rows
from mlwarden.workspace import Workspace, init_workspace, open_workspace

ROW: dict[str, Any] = {"age": 41, "income": 52000.5, "region": "north", "tenure_months": 17}
OUTPUT: dict[str, Any] = {"label": 1, "score": 0.8125}
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def _median_us(run: Callable[[], float], rows: int, repeats: int) -> float:
    """Median over ``repeats`` of the seconds ``run`` reports, per row, in microseconds."""
    return round(statistics.median(run() for _ in range(repeats)) / rows * 1e6, 2)


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _requests(rows: int, subjects: bool) -> list[PayloadRequest]:
    out = []
    for i in range(rows):
        decision = str(uuid.uuid4())
        subject = f"customer-{i}" if subjects else None
        out.append(PayloadRequest.for_row(decision, "inputs", {**ROW, "n": i}, subject=subject))
        out.append(PayloadRequest.for_row(decision, "outputs", OUTPUT, subject=subject))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int, default=64, help="rows per prediction (each seals inputs + outputs)")
    args = parser.parse_args()
    repeats = 15 if args.quick else 60
    payloads = 2 * args.rows
    with tempfile.TemporaryDirectory() as root:
        options = WorkspaceOptions.from_settings(Settings(database_url=None), Path(root) / "ws")
        init_workspace(options)
        ws: Workspace = open_workspace(options)
        try:
            ring = KeyRing(LocalKek.load(options.paths.privacy_kek))
            plain = Table(
                "bench_plain", MetaData(), Column("id", String(64), primary_key=True), Column("v", LargeBinary)
            )
            plain.create(ws.engine)
            rows = [{**ROW, "n": i} for i in range(payloads)]

            def canonical() -> float:
                return _timed(lambda: [canonical_json(row) for row in rows])

            def in_transaction(work: Callable[[Connection], object]) -> float:
                """Seconds spent in ``work`` inside a write transaction; the commit (fsync) is not counted."""
                with write_transaction(ws.engine) as conn:
                    return _timed(lambda: work(conn))

            def plain_insert() -> float:
                values = [{"id": str(uuid.uuid4()), "v": b"x" * 100} for _ in range(payloads)]
                return in_transaction(lambda conn: conn.execute(plain.insert(), values))

            warm = _requests(args.rows, subjects=True)
            with write_transaction(ws.engine) as conn:
                seal(conn, ring, warm, now=NOW)
            slots = [ring.slot(r.scope, r.field, "2026-11-26") for r in warm]
            with write_transaction(ws.engine) as conn:
                found = ring.subject_keys(conn, slots, now=NOW)
            keys = [found[slot] for slot in slots]

            def crypto_only() -> float:
                return _timed(lambda: seal_with_keys(warm, keys, "2026-11-26"))

            def sealed_rows(subjects: bool) -> Callable[[], float]:
                def run() -> float:
                    batch = _requests(args.rows, subjects=subjects)
                    return in_transaction(lambda conn: store_payloads(conn, seal(conn, ring, batch, now=NOW)))

                return run

            batch = _requests(args.rows, subjects=True)
            with write_transaction(ws.engine) as conn:
                sealed = seal(conn, ring, batch, now=NOW)
                store_payloads(conn, sealed)
            claims = [PayloadClaim(s.decision_id, s.field, s.commitment) for s in sealed]

            def open_rows() -> float:
                with ws.engine.connect() as conn:
                    return _timed(lambda: open_many(conn, ring, claims))

            decisions = [str(uuid.uuid4()) for _ in range(args.rows)]
            names = [f"customer-{i}" for i in range(args.rows)]
            seal_rows(ws, decisions, rows[: args.rows], [OUTPUT] * args.rows, names)  # keys of the day cached
            seal_rows(ws, decisions, rows[: args.rows], [OUTPUT] * args.rows)

            def prediction_rows(subjects: bool) -> float:
                """``seal_rows`` one decision at a time (a one-row request, the gateway's common case)."""
                who = [[name] for name in names] if subjects else [None] * args.rows
                return _timed(
                    lambda: [
                        seal_rows(ws, [d], [r], [OUTPUT], s) for d, r, s in zip(decisions, rows, who, strict=False)
                    ]
                )

            result = {
                "payloads_per_batch": payloads,
                "seal_rows_own_us_per_decision": _median_us(lambda: prediction_rows(False), args.rows, repeats),
                "seal_rows_subject_us_per_decision": _median_us(lambda: prediction_rows(True), args.rows, repeats),
                "baseline_canonical_us_per_row": _median_us(canonical, payloads, repeats),
                "baseline_insert_us_per_row": _median_us(plain_insert, payloads, repeats),
                "seal_crypto_us_per_row": _median_us(crypto_only, payloads, repeats),
                "seal_subject_us_per_row": _median_us(sealed_rows(subjects=True), payloads, repeats),
                "seal_own_keys_us_per_row": _median_us(sealed_rows(subjects=False), payloads, repeats),
                "open_us_per_row": _median_us(open_rows, payloads, max(3, repeats // 5)),
                "python": platform.python_version(),
                "quick": args.quick,
            }
        finally:
            ws.close()
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
