"""Replicas benchmark: 1, 2 and 3 ``mlwarden serve`` replicas on one PostgreSQL, and a kill under load.

Every replica is a separate ``mlwarden serve`` process (one worker each) on its own port,
all on one workspace whose database is one PostgreSQL server (a throwaway cluster from
``tests/support/postgres.py``, or ``$MLWARDEN_BENCH_POSTGRES_URL``). ``wrk`` drives each
replica with the same one-row governed POST at the same time (32 connections in all, split
evenly) and the aggregate req/s is the sum. The baseline is the same run with one replica;
the ratios say how throughput scales with replicas on this machine.

CPU per request: user + system time of every replica's process group and of every
PostgreSQL process, from /proc before and after each run, divided by the requests wrk
completed.

Then the failure run: three replicas under an httpx load (threads, round-robin), the
holder of the ``ledger.writer`` lease is SIGKILLed, the load continues on the survivors.
``entries_lost_after_kill`` counts decisions answered 200 that the ledger does not hold
at the answered index (must be 0); ``failover_seconds`` is the time from the kill until
the database shows the lease held again in a new epoch.

Usage: python bench/replicas.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, select, text

from mlwarden.config import WorkspaceOptions
from mlwarden.ledger.duties import writer_lease
from mlwarden.store.schema import ledger_entries
from mlwarden.workspace import open_workspace
from served_model import served_workspace
from wrk_tool import ensure_wrk

HERE = Path(__file__).resolve().parent
CONNECTIONS = 32
LEASE_TTL = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_stats() -> list[tuple[int, int, int, float]]:
    """``(pid, ppid, pgrp, cpu seconds)`` of every live process, from /proc."""
    out = []
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out.append((int(stat.parent.name), int(fields[1]), int(fields[2]), (int(fields[11]) + int(fields[12])) / tick))
    return out


def _cpu(pgids: set[int], postmaster: int | None) -> tuple[float, float]:
    """CPU seconds of the replicas' process groups and of the PostgreSQL server (postmaster + children)."""
    replicas = database = 0.0
    for pid, ppid, pgrp, seconds in _proc_stats():
        if pgrp in pgids:
            replicas += seconds
        elif postmaster is not None and postmaster in (pid, ppid):
            database += seconds
    return replicas, database


def _wrk(wrk: str, url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {"rps": rps, "requests": total, "non_2xx": float(errors.group(1)) if errors else 0.0,
            "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else 0.0}  # fmt: skip


class Replica:
    """One ``mlwarden serve`` process in its own process group."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        command = [sys.executable, "-m", "mlwarden.cli", "--home", str(home), "serve", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"replica on port {self.port} exited before it was ready")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise SystemExit(f"replica on port {self.port} not ready within {timeout:g}s")

    def holds_lease(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            body = httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).json()
            return bool(body["lease"]["held_here"])
        return False

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


def _start(count: int, home: Path, env: dict[str, str]) -> list[Replica]:
    replicas = []
    for _ in range(count):  # one after the other: see the start-up race noted in tests/integration/test_replicas.py
        replicas.append(Replica(home, env))
        replicas[-1].wait_ready()
    return replicas


def _throughput(count: int, home: Path, env: dict[str, str], wrk: str, script: Path, seconds: int,
                postmaster: int | None) -> dict[str, float]:  # fmt: skip
    replicas = _start(count, home, env)
    try:
        urls = [f"http://127.0.0.1:{r.port}/v1/models/bc/predict" for r in replicas]
        for url in urls:
            _wrk(wrk, url, script, 4, 1)  # warm up
        pgids = {r.proc.pid for r in replicas}
        cpu_before = _cpu(pgids, postmaster)
        results: list[dict[str, float]] = []
        threads = [
            threading.Thread(target=lambda u=url: results.append(_wrk(wrk, u, script, CONNECTIONS // count, seconds)))
            for url in urls
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=seconds + 90)
        cpu_after = _cpu(pgids, postmaster)
    finally:
        for replica in replicas:
            replica.stop()
    requests = max(sum(r["requests"] for r in results), 1.0)
    return {
        "rps": round(sum(r["rps"] for r in results), 1),
        "p99_ms_worst": round(max(r["p99_ms"] for r in results), 3),
        "non_2xx": sum(r["non_2xx"] for r in results),
        "cpu_us_per_req_gateway": round((cpu_after[0] - cpu_before[0]) * 1e6 / requests, 1),
        "cpu_us_per_req_postgres": round((cpu_after[1] - cpu_before[1]) * 1e6 / requests, 1),
    }


def _kill_run(home: Path, env: dict[str, str], options: WorkspaceOptions, token: str, body: dict[str, Any],
              seconds: float) -> dict[str, Any]:  # fmt: skip
    replicas = _start(3, home, env)
    acks: list[tuple[str, int]] = []
    lock, stop = threading.Lock(), threading.Event()

    def load(offset: int) -> None:
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{r.port}", timeout=5) for r in replicas]
        turn = offset
        while not stop.is_set():
            turn += 1
            try:
                response = clients[turn % 3].post(
                    "/v1/models/bc/predict", json=body, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                answer = response.json()
                with lock:
                    acks.extend((d, answer["ledger_index"]) for d in answer["decision_ids"])
        for client in clients:
            client.close()

    ws = open_workspace(options)
    workers = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(6)]
    try:
        deadline = time.monotonic() + 30
        while not any(r.holds_lease() for r in replicas) and time.monotonic() < deadline:
            time.sleep(0.1)
        holder = next(r for r in replicas if r.holds_lease())
        epoch = writer_lease(ws.engine).epoch
        for w in workers:
            w.start()
        time.sleep(seconds / 2)
        holder.kill()
        killed_at = time.monotonic()
        failover = None
        while time.monotonic() - killed_at < 30:
            now = writer_lease(ws.engine)
            if now.holder is not None and now.epoch > epoch:
                failover = time.monotonic() - killed_at
                break
            time.sleep(0.02)
        time.sleep(max(0.0, seconds / 2 - (time.monotonic() - killed_at)))
        stop.set()
        for w in workers:
            w.join(timeout=30)
        for replica in replicas:
            replica.stop()
        lost = sum(1 for decision, index in acks if ws.log.find_ref(decision) != index)
        size = ws.log.size()
        with ws.engine.connect() as conn:
            indices = [int(i) for i in conn.scalars(select(ledger_entries.c.idx).order_by(ledger_entries.c.idx))]
        return {
            "acknowledged_decisions": len(acks),
            "entries_lost_after_kill": lost,
            "failover_seconds": None if failover is None else round(failover, 2),
            "lease_ttl_seconds": LEASE_TTL,
            "one_contiguous_sequence": indices == list(range(size)),
            "ledger_verifies": ws.log.verify().ok,
        }
    finally:
        stop.set()
        for replica in replicas:
            replica.kill()
        ws.close()


def _postgres(root: Path) -> tuple[str, Any]:
    """A database URL and the cluster to stop (None when $MLWARDEN_BENCH_POSTGRES_URL is used)."""
    given = os.environ.get("MLWARDEN_BENCH_POSTGRES_URL")
    if given:
        return given, None
    sys.path.insert(0, str(HERE.parent))  # tests/support/postgres.py starts the throwaway cluster
    from tests.support.postgres import Cluster

    cluster = Cluster.start()
    admin = create_engine(cluster.url, isolation_level="AUTOCOMMIT")
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return cluster.url.rsplit("/", 1)[0] + "/" + name, cluster


def _postmaster(cluster: Any) -> int | None:
    if cluster is None:
        return None
    with contextlib.suppress(OSError, ValueError):
        return int((cluster.datadir / "postmaster.pid").read_text().split()[0])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per run instead of 8")
    args = parser.parse_args()
    seconds = 3 if args.quick else 8
    wrk = ensure_wrk()
    root = Path(tempfile.mkdtemp(prefix="mlwarden-replicas-bench-"))
    url, cluster = _postgres(root)
    result: dict[str, Any] = {}
    try:
        served = served_workspace(root, url)
        options, token, body = served.options, served.token, served.body
        home = options.paths.home
        script = root / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(json.dumps(body))}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        )
        env = {**os.environ, "MLWARDEN_DATABASE_URL": url, "MLWARDEN_RATE_LIMIT": "0",
               "MLWARDEN_LEASE_TTL_SECONDS": str(LEASE_TTL), "MLWARDEN_CHECKPOINT_INTERVAL_SECONDS": "1"}  # fmt: skip
        postmaster = _postmaster(cluster)
        for count in (1, 2, 3):
            for key, value in _throughput(count, home, env, wrk, script, seconds, postmaster).items():
                result[f"{key}_r{count}"] = value
        for count in (2, 3):
            result[f"rps_ratio_r{count}"] = round(result[f"rps_r{count}"] / result["rps_r1"], 3)
            result[f"cpu_ratio_r{count}"] = round(
                result[f"cpu_us_per_req_gateway_r{count}"] / result["cpu_us_per_req_gateway_r1"], 3
            )
        result |= _kill_run(home, env, options, token, body, seconds=2.0 * seconds)
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    result["seconds_per_run"] = seconds
    result["baseline"] = "one replica on the same PostgreSQL (rps_r1, cpu_us_per_req_gateway_r1)"
    result["machine"] = {
        "cpus": os.cpu_count(),
        "load_generator": f"wrk, {CONNECTIONS} connections split over replicas",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
