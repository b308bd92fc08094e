"""A cached ledger of mixed, realistic entry kinds (default 1,000,000) for the watch and audit benchmarks.

Built through the real append code (``Log.append_many``: rendering, hashing, the Merkle
frontier and every lookup column, in large batches, one transaction each) and kept under
``/tmp/mlwarden-bench-ledger/<n>-<schema head>/`` so later runs and other benchmarks reuse it;
a new schema revision builds a new one. Entry times are spread over the last seven days
(each batch one group commit, a few minutes apart), as a gateway's would be.

Mix (per 100 entries): 70 predictions (40 principals, 5 models, decision ids, commitments),
8 access.allowed, 6 access.denied, 6 request.rejected (400/403/413/422/429), 4 feedback,
2 request.rejected_summary (401s by source), 4 governance and token entries.

Usage: python bench/million_ledger.py [--entries N] [--rebuild]   (prints one JSON object)
Library: ``from bench.million_ledger import million_ledger; options = million_ledger(1_000_000)``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory

import mlwarden.ledger.log as ledger_log
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.ledger.entry import PreparedEntry
from mlwarden.store.migrate import MIGRATIONS
from mlwarden.workspace import init_workspace, open_workspace

ROOT = Path("/tmp/mlwarden-bench-ledger")  # noqa: S108 - a shared cache other benchmarks find by name
BATCH = 20_000
SEED = 13
MODELS = ("credit-risk", "fraud", "churn", "bc", "pricing")
PRINCIPALS = tuple(f"token:svc{i:02d}" for i in range(36)) + tuple(
    f"spiffe://example.org/ns/scoring/sa/batch{i}" for i in range(4)
)
ATTACKER = "token:attacker"


def schema_head() -> str:
    """The newest migration revision and a digest of its file: a ledger built under another schema is not reused."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(cfg)
    head = script.get_revision(script.get_current_head())
    if head is None:
        raise SystemExit("no migrations found")
    digest = hashlib.sha256(Path(head.path).read_bytes()).hexdigest()[:8]
    return f"{head.revision}-{digest}"


def ledger_dir(entries: int) -> Path:
    """Where the ledger of ``entries`` entries for the current schema lives."""
    return ROOT / f"{entries}-{schema_head()}"


def _commitment(rng: random.Random) -> str:
    return hashlib.sha256(rng.randbytes(16)).hexdigest()


def _entry(rng: random.Random, n: int) -> PreparedEntry:
    roll = rng.random()
    model = rng.choice(MODELS)
    version = 1 + (n % 3)
    principal = ATTACKER if rng.random() < 0.01 else rng.choice(PRINCIPALS)
    subject = f"model:{model}:{version}"
    refs: tuple[str, ...] = ()
    body: dict[str, Any]
    kind = "prediction"
    if roll < 0.70:
        ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(rng.choice((1, 1, 1, 2, 4)))]
        body = {"model": model, "version": version, "sha256": "ab" * 32, "decision_ids": ids, "v": 2,
                "inputs": [_commitment(rng) for _ in ids], "outputs": [_commitment(rng) for _ in ids],
                "latency_ms": round(rng.uniform(0.2, 3.0), 3)}  # fmt: skip
        refs = tuple(ids)
    elif roll < 0.78:
        kind, subject = "access.allowed", f"model:{model}"
        body = {"decision": "allow", "reason": "scope audit:read", "principal": principal,
                "action": "audit:read", "resource": subject}  # fmt: skip
    elif roll < 0.84:
        kind, subject = "access.denied", f"model:{model}"
        body = {"decision": "deny", "reason": "missing scope inference:read", "principal": principal,
                "action": "inference:read", "resource": subject}  # fmt: skip
    elif roll < 0.90:
        kind, subject = "request.rejected", f"/v1/models/{model}/predict"
        body = {"reason": "inputs[0].age: expected a number", "status": rng.choice((400, 403, 413, 422, 429))}
    elif roll < 0.94:
        kind = "feedback"
        fid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        body = {"feedback_id": fid, "decision_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "decision_index": max(0, n - rng.randint(1, 5000)), "kind": "incorrect", "expected": None,
                "comment": None}  # fmt: skip
        refs = (fid,)
    elif roll < 0.96:
        kind, subject, principal = "request.rejected_summary", "requests:unauthenticated", "system:gateway"
        body = {"count": 12, "statuses": {"401": 10, "413": 2}, "sources": {"203.0.113.9": 12},
                "reasons": {"bad token": 10, "too large": 2}}  # fmt: skip
    else:
        kind = rng.choice(("model.registered", "model.promoted", "gate.run", "token.created", "token.revoked"))
        subject = f"token:t{n}" if kind.startswith("token.") else subject
        body = {"n": n, "note": "governance"}
    return PreparedEntry.build(kind=kind, subject=subject, principal=principal, body=body, refs=refs)


def million_ledger(entries: int = 1_000_000, *, rebuild: bool = False, log: bool = True) -> WorkspaceOptions:
    """Options of a SQLite workspace holding ``entries`` mixed entries (built once, then reused)."""
    folder = ledger_dir(entries)
    options = WorkspaceOptions.from_settings(Settings(database_url=None), folder / "ws")
    done = folder / "complete"
    if done.exists() and not rebuild:
        return options
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    init_workspace(options)
    ws = open_workspace(options)
    rng = random.Random(SEED)
    start = datetime.now(UTC) - timedelta(days=7)
    step = timedelta(days=7) / max(1, entries // BATCH)
    real_clock = ledger_log.utc_now
    try:
        made = 0
        while made < entries:
            moment = start + step * (made // BATCH)
            ledger_log.utc_now = lambda m=moment: m.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # type: ignore[misc]
            batch = [_entry(rng, made + i) for i in range(min(BATCH, entries - made))]
            ws.log.append_many(batch)
            made += len(batch)
            if log:
                print(f"  built {made:,}/{entries:,}", file=sys.stderr)
    finally:
        ledger_log.utc_now = real_clock  # type: ignore[misc]
        ws.close()
    done.write_text(json.dumps({"entries": entries, "schema": schema_head()}))
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--rebuild", action="store_true", help="build again even when cached")
    args = parser.parse_args()
    started = time.perf_counter()
    cached = (ledger_dir(args.entries) / "complete").exists() and not args.rebuild
    options = million_ledger(args.entries, rebuild=args.rebuild)
    elapsed = time.perf_counter() - started
    print(json.dumps({"entries": args.entries, "schema": schema_head(), "database": str(options.paths.database),
                      "cached": cached, "seconds": round(elapsed, 1),
                      "entries_per_s": None if cached else round(args.entries / elapsed, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
