"""Refused client certificates under ``serve --client-ca`` reach the ledger and raise ``auth.failure_burst``.

In process, on asyncio's loop and on uvloop: :class:`RecordingTLSProtocol` counts each kind of
refusal (and nothing else) into a real rejection summary, and a good certificate still gets an
``https`` scope tagged with its SPIFFE ID; this pins the private asyncio hook it relies on.
Then a real ``serve`` subprocess with certificates made by ``mlwarden certs init`` / ``certs issue``,
a second (foreign) CA, and an expired certificate signed by the right CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request
from uvicorn.server import ServerState

from mlwarden.api.rejections import Rejections, RejectionSummary
from mlwarden.api.tls import (
    HANDSHAKE_PATH,
    UNVERIFIED,
    MutualTLS,
    RecordingTLSProtocol,
    check_supported,
    recording_protocol,
    refusal,
)
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.certs import init_ca, issue
from mlwarden.identity.ratelimit import TokenBuckets
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.samples import SampleModel, breast_cancer_model
from mlwarden.workspace import init_workspace, open_workspace
from tests.support.processes import wait_listening

START_TIMEOUT = 90.0
"""Seconds the server may take to listen: imports are slow on a busy two-core machine."""
WAIT = 60.0
"""Seconds to wait for a summary entry or an alert to appear."""
CLI_TIMEOUT = 120.0
SCORER = "spiffe://example.org/ns/prod/sa/scorer"
FOREIGN_HANDSHAKES = 25
NO_CERT_HANDSHAKES = 3


def _cli(home: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mlwarden.cli", "--home", str(home), *args],
        capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"mlwarden {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _expired_certificate(keys: Path, out: Path) -> tuple[str, str]:
    """A client certificate signed by the workspace CA whose validity ended yesterday."""
    ca_cert = x509.load_pem_x509_certificate((keys / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((keys / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=10)).not_valid_after(now - dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(SCORER)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = out / "expired.pem", out / "expired.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@dataclass(frozen=True)
class Served:
    home: Path
    port: int
    ca: Path
    certs: dict[str, tuple[str, str]]
    stderr: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The workspace-style CA with server, good and expired client certificates, and a foreign CA's certificate."""
    root = tmp_path_factory.mktemp("pki")
    keys, other, out = root / "keys", root / "other", root / "certs"
    init_ca(keys)
    init_ca(other, name="someone else's CA")
    good = issue(keys, "good", out=out, spiffe_id=SCORER)
    foreign = issue(other, "foreign", out=out, spiffe_id=SCORER)
    return {
        "tls": MutualTLS(str(keys / "server.pem"), str(keys / "server.key"), str(keys / "ca.pem")),
        "ca": keys / "ca.pem",
        "good": (str(good.cert), str(good.key)),
        "foreign": (str(foreign.cert), str(foreign.key)),
        "expired": _expired_certificate(keys, out),
    }


def _inprocess_app(seen: list[dict[str, Any]]) -> tuple[FastAPI, Rejections]:
    app = FastAPI()
    rejections = Rejections(summary=RejectionSummary(seconds=60, events=10_000, top=20), sources=TokenBuckets(0, 0))
    app.state.rejections = rejections

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        seen.append({"scheme": request.url.scheme, "spiffe": request.scope["extensions"].get("mlwarden.spiffe_id")})
        return {"ok": True}

    return app, rejections


def _client_request(port: int, ca: Path, cert: tuple[str, str] | None, payload: bytes) -> bytes:
    """Send ``payload`` over TLS with ``cert``: what the server answered (b"" when it refused)."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(*cert)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(payload)
                answer = tls.recv(65536)
                return answer
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return b""


def _plain(port: int, payload: bytes) -> None:
    """No TLS at all: a bare connect-and-close (a port probe), or plain HTTP to the TLS port."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        if payload:
            raw.sendall(payload)
            with contextlib.suppress(OSError):
                raw.recv(4096)


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def test_recording_protocol_counts_each_refusal_in_process(
    pki: dict[str, Any], loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    seen: list[dict[str, Any]] = []
    app, rejections = _inprocess_app(seen)
    config = uvicorn.Config(app, http=recording_protocol(pki["tls"]), log_level="warning")  # type: ignore[arg-type]
    config.load()
    server_state = ServerState()
    get = b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    async def scenario() -> bytes:
        server = await asyncio.get_running_loop().create_server(
            lambda: config.http_protocol_class(config=config, server_state=server_state, app_state={}),  # type: ignore[call-arg]
            "127.0.0.1", 0,
        )  # fmt: skip
        port = server.sockets[0].getsockname()[1]
        try:
            for cert in (pki["foreign"], pki["foreign"], pki["expired"], None):
                assert await asyncio.to_thread(_client_request, port, pki["ca"], cert, get) == b""
            await asyncio.to_thread(_plain, port, b"")  # a port probe: not a failed authentication
            await asyncio.to_thread(_plain, port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return await asyncio.to_thread(_client_request, port, pki["ca"], pki["good"], get)
        finally:
            server.close()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        answer = runner.run(asyncio.wait_for(scenario(), timeout=60))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert seen == [{"scheme": "https", "spiffe": SCORER}]
    body = rejections.summary.peek()
    assert body["reasons"] == {
        "client certificate refused: CERTIFICATE_VERIFY_FAILED (unable to get local issuer certificate)": 2,
        "client certificate refused: CERTIFICATE_VERIFY_FAILED (certificate has expired)": 1,
        "no client certificate": 1,
        "tls handshake failed: HTTP_REQUEST": 1,
    }
    assert body["statuses"] == {"400": 1, "401": 4}
    assert body["sources"] == {"127.0.0.1": 5}
    assert body["paths"] == {HANDSHAKE_PATH: 5}
    assert body["claimed_principals"] == {UNVERIFIED: 5}


def test_refusal_classifies_what_is_an_authentication_failure() -> None:
    verify = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    verify.verify_message = "certificate has expired"
    missing = ssl.SSLError(1, "peer did not return a certificate")
    missing.reason = "PEER_DID_NOT_RETURN_A_CERTIFICATE"
    assert refusal(verify) == ("client certificate refused: CERTIFICATE_VERIFY_FAILED (certificate has expired)", 401)
    assert refusal(missing) == ("no client certificate", 401)
    assert refusal(ConnectionResetError()) is None  # the peer went away mid-handshake
    assert refusal(ConnectionAbortedError("handshake timed out")) is None


def test_this_python_has_the_hook_refusals_are_counted_through() -> None:
    check_supported()  # raises ConfigError on a Python whose asyncio lacks it
    assert "_on_handshake_complete" in vars(RecordingTLSProtocol)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("tlsfail")
    sample: SampleModel = breast_cancer_model(root / "art", trees=5)
    options = WorkspaceOptions.from_settings(Settings(database_url=None), root / "ws")
    init_workspace(options)
    ws = open_workspace(options)
    try:
        register_dataset(ws, name="breast-cancer-train", path=sample.train_csv, principal="alice")
        register_model(ws, name="bc", path=sample.onnx, card_path=sample.card, principal="alice")
        approve_and_promote(ws, "bc", 1, approver="reviewer")
    finally:
        ws.close()
    home, keys, certs = options.paths.home, options.paths.keys, root / "certs"
    _cli(home, "certs", "init")
    good = json.loads(_cli(home, "certs", "issue", "scorer", "--spiffe-id", SCORER, "--out", str(certs)))
    other = root / "other"
    _cli(other, "certs", "init")  # someone else's CA
    foreign = json.loads(_cli(other, "certs", "issue", "foreign", "--spiffe-id", SCORER, "--out", str(certs)))
    options.paths.policy.write_text(f"spiffe:\n  - id: {SCORER}\n    scopes: [inference:read]\n    models: [bc]\n")
    port, stderr = _free_port(), root / "serve.err"
    env = {**os.environ, "MLWARDEN_RATE_LIMIT": "0", "MLWARDEN_REJECTION_SUMMARY_SECONDS": "1"}
    command = [
        sys.executable, "-m", "mlwarden.cli", "--home", str(home), "serve", "--port", str(port),
        "--tls-cert", str(keys / "server.pem"), "--tls-key", str(keys / "server.key"),
        "--client-ca", str(keys / "ca.pem"),
    ]  # fmt: skip
    with stderr.open("wb") as err:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        wait_listening(port, proc, lambda: stderr.read_text(errors="replace")[-4000:], START_TIMEOUT)
        yield Served(
            home, port, keys / "ca.pem",
            {"good": (good["cert"], good["key"]), "foreign": (foreign["cert"], foreign["key"]),
             "expired": _expired_certificate(keys, certs)},
            stderr,
        )  # fmt: skip
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # a clean stop: the last window's summary is recorded
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _refused_handshake(served: Served, cert: tuple[str, str] | None) -> None:
    """Connect with ``cert`` (or none); the server must refuse: no HTTP answer ever comes back."""
    context = ssl.create_default_context(cafile=str(served.ca))
    if cert is not None:
        context.load_cert_chain(*cert)
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                # TLS 1.3: the client's handshake ends before the server checks its certificate;
                # the refusal arrives as an alert (or end of stream) on the first read.
                tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = tls.recv(4096)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return
        assert answer == b"", f"the server answered a refused client: {answer[:100]!r}"


def _summaries(served: Served) -> list[dict[str, Any]]:
    out = _cli(served.home, "audit", "query", "--kind", "request.rejected_summary", "--json", "--limit", "1000")
    return [json.loads(line)["body"] for line in out.splitlines() if line.strip()]


def _tls_counts(bodies: list[dict[str, Any]], needle: str) -> tuple[int, Counter[str]]:
    """How many handshake refusals whose reason contains ``needle`` were recorded, and their statuses/sources."""
    count, seen = 0, Counter[str]()
    for body in bodies:
        if body.get("paths", {}).get("(tls handshake)") is None:
            continue
        matched = sum(n for reason, n in body["reasons"].items() if needle in reason)
        count += matched
        if matched:
            seen.update({f"status:{k}": v for k, v in body["statuses"].items()})
            seen.update({f"source:{k}": v for k, v in body["sources"].items()})
            seen.update({f"claimed:{k}": v for k, v in body["claimed_principals"].items()})
    return count, seen


def _wait_for(served: Served, needle: str, expected: int) -> tuple[int, Counter[str]]:
    deadline = time.monotonic() + WAIT
    while True:
        found = _tls_counts(_summaries(served), needle)
        if found[0] >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _source_bursts(served: Served) -> list[dict[str, Any]]:
    listed = json.loads(_cli(served.home, "alerts", "list", "--json"))["alerts"]
    alerts = [item.get("alert", item) for item in listed]
    return [a for a in alerts if a["rule"] == "auth.failure_burst" and a["subject"] == "source:127.0.0.1"]


@pytest.mark.slow
def test_foreign_and_missing_certificates_are_counted_and_raise_a_burst(served: Served) -> None:
    for _ in range(FOREIGN_HANDSHAKES):
        _refused_handshake(served, served.certs["foreign"])
    for _ in range(NO_CERT_HANDSHAKES):
        _refused_handshake(served, None)
    # Both development CAs carry the same name: the foreign certificate's signature is what fails.
    foreign, seen = _wait_for(served, "CERTIFICATE_VERIFY_FAILED (certificate signature failure)", FOREIGN_HANDSHAKES)
    assert foreign == FOREIGN_HANDSHAKES
    missing, seen_missing = _wait_for(served, "no client certificate", NO_CERT_HANDSHAKES)
    assert missing == NO_CERT_HANDSHAKES
    for counted in (seen, seen_missing):
        assert set(counted) >= {"status:401", "source:127.0.0.1", "claimed:tls:unverified"}
        assert not any(key.startswith("status:") and key != "status:401" for key in counted)

    deadline = time.monotonic() + WAIT  # serve's own watcher raises the alert
    while not (burst := _source_bursts(served)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert burst, "no auth.failure_burst alert for source 127.0.0.1"

    context = ssl.create_default_context(cafile=str(served.ca))
    context.load_cert_chain(*served.certs["good"])
    row = [[0.5] * 30]
    with httpx.Client(verify=context, timeout=30) as http:
        answer = http.post(f"https://127.0.0.1:{served.port}/v1/models/bc/predict", json={"inputs": row})
    assert answer.status_code == 200, answer.text
    decisions = _cli(served.home, "audit", "query", "--principal", SCORER, "--json", "--limit", "10")
    assert any(json.loads(line)["kind"] == "prediction" for line in decisions.splitlines() if line)

    logs = served.stderr.read_text(errors="replace")
    assert "Traceback" not in logs
    assert "BEGIN" not in logs  # no certificate or key body
    for _, key in served.certs.values():
        assert Path(key).read_text().splitlines()[1] not in logs


@pytest.mark.slow
def test_an_expired_certificate_is_counted(served: Served) -> None:
    for _ in range(4):
        _refused_handshake(served, served.certs["expired"])
    expired, seen = _wait_for(served, "certificate has expired", 4)
    assert expired == 4
    assert seen["status:401"] >= 4
    assert seen["source:127.0.0.1"] >= 4
