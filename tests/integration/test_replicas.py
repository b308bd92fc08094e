"""Three ``mlwarden serve`` replicas on one PostgreSQL: the writer-lease holder is SIGKILLed under load."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.tokens import create_token
from mlwarden.ledger.duties import writer_lease
from mlwarden.ledger.merkle import verify_consistency
from mlwarden.ledger.notes import Checkpoint
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.samples import SampleModel, breast_cancer_model
from mlwarden.store.schema import ledger_entries
from mlwarden.workspace import Workspace, open_workspace

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TTL = 2.0
"""The writer lease's TTL in the replicas (seconds): failover must take at most TTL + FAILOVER_SLACK."""
FAILOVER_SLACK = 2.0
CHECKPOINT_EVERY = 0.5
START_TIMEOUT = 90.0
"""Seconds a replica may take to answer /readyz: imports are slow on a busy two-core machine."""
PHASE_TIMEOUT = 60.0
ACKS_PER_PHASE = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(condition: Callable[[], object], what: str, bound: float = PHASE_TIMEOUT) -> float:
    """Poll ``condition`` until true; the seconds it took; fails the test after ``bound``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > bound:
            pytest.fail(f"{what}: not within {bound:g}s")
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("replicas") / "art", trees=5)


@pytest.fixture
def database_url(postgres_server: str) -> str:
    """A fresh database on the test PostgreSQL server."""
    name = f"mlw_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return postgres_server.rsplit("/", 1)[0] + "/" + name


class Replica:
    """One ``mlwarden serve`` process; stderr goes to a file, so nothing the test does blocks on a pipe."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.stderr_path = home.parent / f"replica-{self.port}.log"
        command = [sys.executable, "-m", "mlwarden.cli", "--home", str(home), "serve", "--port", str(self.port)]
        with self.stderr_path.open("wb") as output:  # JSON logs (stdout) and errors in one file
            self.proc = subprocess.Popen(command, env=env, stdout=output, stderr=output, start_new_session=True)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5)

    def ready(self) -> dict[str, object] | None:
        """The /readyz body, or None while it does not answer 200."""
        if self.proc.poll() is not None:
            pytest.fail(f"replica on port {self.port} died: {self.stderr()}")
        try:
            response = self.http.get("/readyz")
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    def holds_lease(self) -> bool:
        body = self.ready()
        return body is not None and body["lease"]["held_here"] is True  # type: ignore[index]

    def stderr(self) -> str:
        return self.stderr_path.read_bytes()[-4000:].decode(errors="replace")

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.http.close()

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down, the lease is released), SIGKILL after 20 s."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
        self.http.close()


@dataclass
class Ack:
    decision_id: str
    index: int
    port: int
    after_kill: bool


class Load:
    """Threads predicting round-robin through every replica, keeping every decision answered 200."""

    def __init__(self, replicas: list[Replica], token: str, rows: list[list[float]], threads: int = 6) -> None:
        self.replicas, self.token, self.rows = replicas, token, rows
        self.acks: list[Ack] = []
        self.killed = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def count(self, port: int | None = None, *, after_kill: bool = False) -> int:
        with self._lock:
            return sum(1 for a in self.acks if (port is None or a.port == port) and a.after_kill == after_kill)

    def _run(self, offset: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{r.port}", timeout=5) for r in self.replicas]
        turn = offset
        try:
            while not self._stop.is_set():
                turn += 1
                client, port = clients[turn % len(clients)], self.replicas[turn % len(clients)].port
                after_kill = self.killed.is_set()
                try:
                    response = client.post("/v1/models/bc/predict", json={"inputs": self.rows}, headers=headers)
                except httpx.HTTPError:
                    continue  # the killed replica refuses connections: the next one is tried
                if response.status_code != 200:
                    continue
                body = response.json()
                with self._lock:
                    self.acks.extend(Ack(d, body["ledger_index"], port, after_kill) for d in body["decision_ids"])
        finally:
            for client in clients:
                client.close()


def _setup(home: Path, url: str, env: dict[str, str], sample: SampleModel) -> tuple[WorkspaceOptions, str]:
    """``mlwarden init`` against PostgreSQL, then a production model and a prediction token."""
    init = subprocess.run(
        [sys.executable, "-m", "mlwarden.cli", "--home", str(home), "init"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    options = WorkspaceOptions.from_settings(Settings(database_url=url), home)
    ws = open_workspace(options)
    try:
        register_dataset(ws, name="breast-cancer-train", path=sample.train_csv, principal="alice")
        register_model(ws, name="bc", path=sample.onnx, card_path=sample.card, principal="alice")
        approve_and_promote(ws, "bc", 1, approver="reviewer")
        token, _ = create_token(ws, name="load", scopes=["inference:read"], principal="admin")
    finally:
        ws.close()
    return options, token


def _checkpoint_sizes(ws: Workspace) -> list[int]:
    return [size for size, _note in ws.log.stored_checkpoints()]


@pytest.fixture
def replicas(tmp_path: Path, database_url: str) -> Iterator[tuple[Path, dict[str, str], list[Replica]]]:
    env = {
        **os.environ,
        "MLWARDEN_DATABASE_URL": database_url,
        "MLWARDEN_RATE_LIMIT": "0",
        "MLWARDEN_LEASE_TTL_SECONDS": str(TTL),
        "MLWARDEN_CHECKPOINT_INTERVAL_SECONDS": str(CHECKPOINT_EVERY),
    }
    started: list[Replica] = []
    try:
        yield tmp_path / "ws", env, started
    finally:
        for replica in started:
            replica.kill()


def test_killing_the_lease_holder_under_load_loses_nothing_and_the_lease_moves(
    replicas: tuple[Path, dict[str, str], list[Replica]], database_url: str, sample: SampleModel
) -> None:
    """3 replicas, one PostgreSQL, SIGKILL the writer-lease holder mid-load: every acknowledged decision is
    proven in one contiguous, verifying tree; checkpoints before and after are consistent; the lease moves
    to a survivor within TTL + 2 s and the survivor keeps checkpointing."""
    home, env, started = replicas
    options, token = _setup(home, database_url, env, sample)
    rows = [[float(v) for v in line.split(",")[:-1]] for line in sample.eval_csv.read_text().splitlines()[1:3]]
    for _ in range(3):
        # One after the other: a replica's start-up check of the ledger head can race another
        # replica's append and publication of checkpoints/latest.txt (Log.check_head reads the
        # head before the file) and refuse to start with a false "rolled back".
        started.append(Replica(home, env))
        _until(lambda: started[-1].ready() is not None, "replica ready", START_TIMEOUT)
    _until(lambda: sum(r.holds_lease() for r in started) == 1, "one replica holds the writer lease")
    holder = next(r for r in started if r.holds_lease())
    survivors = [r for r in started if r is not holder]
    ws = open_workspace(options)
    try:
        lease_before = writer_lease(ws.engine)
        setup_size = ws.log.size()
        assert lease_before.holder is not None
        assert lease_before.holder.split(":")[1] == str(holder.proc.pid)
        with Load(started, token, rows) as load:
            _until(lambda: all(load.count(r.port) >= ACKS_PER_PHASE for r in started), "every replica answered")
            _until(lambda: any(s > setup_size for s in _checkpoint_sizes(ws)), "the holder checkpointed under load")
            holder.kill()
            killed_at = time.monotonic()
            load.killed.set()
            size_at_kill = ws.log.size()

            def moved() -> bool:
                now = writer_lease(ws.engine)
                return now.holder is not None and now.epoch > lease_before.epoch

            _until(moved, "the writer lease moved", TTL + FAILOVER_SLACK + 5)
            failover = time.monotonic() - killed_at
            _until(lambda: any(s > size_at_kill for s in _checkpoint_sizes(ws)), "a survivor stored a checkpoint")
            _until(
                lambda: all(load.count(r.port, after_kill=True) >= ACKS_PER_PHASE for r in survivors),
                "both survivors kept answering",
            )
        lease_after = writer_lease(ws.engine)
        assert failover <= TTL + FAILOVER_SLACK, f"lease took {failover:.2f}s to move"
        assert lease_after.holder is not None
        assert lease_after.holder.split(":")[1] in {str(r.proc.pid) for r in survivors}
        assert sum(r.holds_lease() for r in survivors) == 1
        for replica in survivors:
            replica.stop()

        acks = load.acks
        assert load.count(holder.port) >= ACKS_PER_PHASE
        size = ws.log.size()
        with ws.engine.connect() as conn:
            indices = [int(i) for i in conn.scalars(select(ledger_entries.c.idx).order_by(ledger_entries.c.idx))]
        assert indices == list(range(size)), "one sequence: indices contiguous from 0, no duplicates"
        assert len({a.decision_id for a in acks}) == len(acks)
        for ack in acks:
            assert ws.log.find_ref(ack.decision_id) == ack.index, f"acknowledged decision {ack.decision_id} lost"
            entry, proof = ws.log.verified_entry(ack.index)
            assert ack.decision_id in entry.body["decision_ids"]
            assert ack.index < proof.tree_size <= size

        notes = {size: Checkpoint.open(note, ws.log.verifier) for size, note in ws.log.stored_checkpoints()}
        old = max(s for s in notes if s <= size_at_kill)
        new = max(notes)
        assert setup_size < old <= size_at_kill < new
        consistency = ws.log.consistency_proof(old, new)
        verify_consistency(old, new, notes[old].root, notes[new].root, consistency.path)
        assert ws.log.verify().ok
    finally:
        ws.close()
    verify = subprocess.run(
        [sys.executable, "-m", "mlwarden.cli", "--home", str(home), "ledger", "verify"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
