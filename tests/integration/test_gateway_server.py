"""The gateway as a real server process: SIGKILL under load, and mutual TLS with SPIFFE identities."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.certs import init_ca, issue
from mlwarden.identity.tokens import create_token
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.samples import SampleModel, breast_cancer_model
from mlwarden.subjects.decisions import decision_payloads
from mlwarden.workspace import init_workspace, open_workspace
from tests.support.processes import wait_listening

START_TIMEOUT = 90
"""Seconds a server may take to listen: imports are slow on a busy two-core machine."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("srv") / "art", trees=5)


def _workspace(home: Path, sample: SampleModel) -> WorkspaceOptions:
    options = WorkspaceOptions.from_settings(Settings(database_url=None), home)
    init_workspace(options)
    ws = open_workspace(options)
    try:
        register_dataset(ws, name="breast-cancer-train", path=sample.train_csv, principal="alice")
        register_model(ws, name="bc", path=sample.onnx, card_path=sample.card, principal="alice")
        approve_and_promote(ws, "bc", 1, approver="reviewer")
    finally:
        ws.close()
    return options


class Server:
    """``mlwarden serve`` as a child process; stderr goes to a file, so nothing the test does can block on a pipe."""

    def __init__(self, home: Path, port: int, *extra: str) -> None:
        self.home, self.port, self.extra = home, port, extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_path = home.parent / f"serve-{port}.err"

    def start(self, scheme: str = "http", **client: object) -> None:
        env = {**os.environ, "MLWARDEN_RATE_LIMIT": "0"}
        command = [sys.executable, "-m", "mlwarden.cli", "--home", str(self.home), "serve", "--port", str(self.port)]
        with self.stderr_path.open("ab") as stderr:
            self.proc = subprocess.Popen(
                [*command, *self.extra], env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
            )
        try:
            wait_listening(self.port, self.proc, self.stderr, START_TIMEOUT)
        except RuntimeError:
            self.kill()  # workers it started may still run
            raise

    def stderr(self) -> str:
        """The server's last words (a file: reading it never blocks)."""
        return self.stderr_path.read_bytes()[-4000:].decode(errors="replace")

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the whole group: uvicorn's workers too
        self.proc.wait(timeout=30)


@pytest.mark.slow
def test_sigkill_under_load_loses_no_answered_decision(tmp_path: Path, sample: SampleModel) -> None:
    """Clients predict while the server is SIGKILLed 3 times; every decision id they got is in the ledger, unchanged."""
    options = _workspace(tmp_path / "ws", sample)
    ws = open_workspace(options)
    token, _ = create_token(ws, name="load", scopes=["inference:read"], principal="admin")
    ws.close()
    rows = [[float(v) for v in line.split(",")[:-1]] for line in sample.eval_csv.read_text().splitlines()[1:3]]
    port = _free_port()
    server = Server(options.paths.home, port)
    received: list[tuple[str, int, list[object]]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            while not stop.is_set():
                try:
                    response = http.post(
                        "/v1/models/bc/predict", json={"inputs": rows}, headers={"Authorization": f"Bearer {token}"}
                    )
                except httpx.HTTPError:
                    time.sleep(0.02)
                    continue
                if response.status_code == 200:
                    body = response.json()
                    with lock:
                        for decision, prediction in zip(body["decision_ids"], body["predictions"], strict=True):
                            received.append((decision, body["ledger_index"], prediction))

    try:
        threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
        server.start()
        for t in threads:
            t.start()
        for _ in range(3):
            time.sleep(1.0)
            server.kill()
            server.start()
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        server.kill()
    assert len(received) > 50
    ws = open_workspace(options)
    try:
        for decision, index, prediction in received:
            assert ws.log.find_ref(decision) == index
            entry = ws.log.entry(index).parse()
            assert decision_payloads(ws, entry.to_json(), decision)["outputs"] == prediction  # sealed with it
        assert ws.log.verify().ok
    finally:
        ws.close()


@pytest.fixture
def mtls(tmp_path: Path, sample: SampleModel) -> Iterator[tuple[int, Path, dict[str, tuple[str, str]]]]:
    options = _workspace(tmp_path / "ws", sample)
    keys = options.paths.keys
    init_ca(keys)
    certs = tmp_path / "certs"
    known = issue(keys, "scorer", out=certs, spiffe_id="spiffe://example.org/ns/prod/sa/scorer")
    unknown = issue(keys, "stranger", out=certs, spiffe_id="spiffe://example.org/ns/dev/sa/stranger")
    other_keys = tmp_path / "other-ca"
    init_ca(other_keys, name="someone else's CA")
    foreign = issue(other_keys, "foreign", out=certs, spiffe_id="spiffe://example.org/ns/prod/sa/scorer")
    options.paths.policy.write_text(
        "spiffe:\n  - id: spiffe://example.org/ns/prod/sa/scorer\n    scopes: [inference:read]\n    models: [bc]\n"
    )
    port = _free_port()
    server = Server(
        options.paths.home, port, "--tls-cert", str(keys / "server.pem"), "--tls-key", str(keys / "server.key"),
        "--client-ca", str(keys / "ca.pem"),
    )  # fmt: skip
    server.start()
    try:
        yield (
            port,
            keys / "ca.pem",
            {
                "known": (str(known.cert), str(known.key)),
                "unknown": (str(unknown.cert), str(unknown.key)),
                "foreign": (str(foreign.cert), str(foreign.key)),
            },
        )
    finally:
        server.kill()


def _wait_healthy(http: httpx.Client) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if http.get("/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not healthy within {START_TIMEOUT}s")


def _client(ca: Path, cert: tuple[str, str] | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(*cert)
    return httpx.Client(verify=context, timeout=5)


def test_mtls_identities(mtls: tuple[int, Path, dict[str, tuple[str, str]]], sample: SampleModel) -> None:
    """No certificate or another CA's: the handshake fails. Unknown SPIFFE ID: 401. Known: allowed per policy."""
    port, ca, certs = mtls
    url = f"https://127.0.0.1:{port}"
    rows = [[float(v) for v in sample.eval_csv.read_text().splitlines()[1].split(",")[:-1]]]
    for cert in (None, certs["foreign"]):
        with _client(ca, cert) as http, pytest.raises(httpx.HTTPError):
            http.post(f"{url}/v1/models/bc/predict", json={"inputs": rows}).raise_for_status()
    with _client(ca, certs["unknown"]) as http:
        response = http.post(f"{url}/v1/models/bc/predict", json={"inputs": rows})
        assert response.status_code == 401
        assert "spiffe://example.org/ns/dev/sa/stranger" in response.json()["detail"]
    with _client(ca, certs["known"]) as http:
        ok = http.post(f"{url}/v1/models/bc/predict", json={"inputs": rows})
        assert ok.status_code == 200, ok.text
        assert http.get(f"{url}/v1/ledger/checkpoint").status_code == 403
        assert http.get(f"{url}/healthz").json() == {"status": "ok"}
    entries = subprocess.run(
        [sys.executable, "-m", "mlwarden.cli", "--home", str(ca.parent.parent), "ledger", "tail", "-n", "50"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    principals = {json.loads(line)["principal"] for line in entries.splitlines()}
    assert "spiffe://example.org/ns/prod/sa/scorer" in principals


def test_two_workers_share_one_ledger_writer(tmp_path: Path, sample: SampleModel) -> None:
    """With --workers 2 sharing one workspace, the ledger holds every answer at its index and verifies."""
    options = _workspace(tmp_path / "ws", sample)
    ws = open_workspace(options)
    token, _ = create_token(ws, name="load", scopes=["inference:read"], principal="admin")
    ws.close()
    rows = [[float(v) for v in sample.eval_csv.read_text().splitlines()[1].split(",")[:-1]]]
    port = _free_port()
    server = Server(options.paths.home, port, "--workers", "2")
    server.start()
    answers = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            _wait_healthy(http)  # the parent listens before its workers have imported anything
            for _ in range(40):
                response = http.post(
                    "/v1/models/bc/predict", json={"inputs": rows}, headers={"Authorization": f"Bearer {token}"}
                )
                assert response.status_code == 200, response.text
                answers.append(response.json())
    finally:
        server.kill()
    ws = open_workspace(options)
    try:
        for answer in answers:
            assert ws.log.find_ref(answer["decision_ids"][0]) == answer["ledger_index"]
        assert len({a["ledger_index"] for a in answers}) == 40
        assert ws.log.verify().ok
    finally:
        ws.close()
