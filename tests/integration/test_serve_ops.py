"""``mlwarden serve`` as operators run it: a plain health port beside mTLS, metrics and JSON logs from every worker."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from mlwarden.api.health import HealthListener
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.certs import init_ca
from mlwarden.workspace import init_workspace

ROOT = Path(__file__).parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, deadline: float, proc: subprocess.Popen[bytes]) -> httpx.Response:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            return httpx.get(url, timeout=1)
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in time")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _serve(
    home: Path, *args: str, env: dict[str, str] | None = None, out: Path | None = None
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "mlwarden.cli", "--home", str(home), "serve", *args]
    environment = {**os.environ, "MLWARDEN_RATE_LIMIT": "0", "PYTHONUNBUFFERED": "1"}
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environment.update(env or {})
    if out is None:
        return subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, start_new_session=True)
    with out.open("wb") as stdout:
        return subprocess.Popen(
            command, env=environment, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True
        )


@pytest.fixture
def workspace_home(tmp_path: Path) -> Path:
    home = tmp_path / "ws"
    init_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), home))
    return home


def test_health_listener_answers_only_healthz_and_reports_a_dead_gateway() -> None:
    """In-process: /healthz is 200 while the probe holds, 503 when it fails; every other path is 404."""
    state = {"up": True}
    listener = HealthListener(_free_port(), lambda: state["up"]).start()
    try:
        base = f"http://127.0.0.1:{listener.port}"
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{base}/metrics").status_code == 404
        assert httpx.get(f"{base}/v1/ledger/checkpoint").status_code == 404
        state["up"] = False
        assert httpx.get(f"{base}/healthz").status_code == 503
    finally:
        listener.close()


@pytest.mark.timeout(120)
def test_health_port_works_when_the_gateway_requires_client_certificates(workspace_home: Path) -> None:
    """With mTLS on, a probe without a certificate gets 200 from --health-port; the TLS port still refuses it."""
    keys = workspace_home / "keys"
    init_ca(keys)
    port, health_port = _free_port(), _free_port()
    proc = _serve(
        workspace_home, "--port", str(port), "--health-port", str(health_port),
        "--tls-cert", str(keys / "server.pem"), "--tls-key", str(keys / "server.key"),
        "--client-ca", str(keys / "ca.pem"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        response = _wait_http(f"http://127.0.0.1:{health_port}/healthz", deadline, proc)
        while response.status_code != 200 and time.monotonic() < deadline:  # the listener starts before uvicorn
            time.sleep(0.2)
            response = httpx.get(f"http://127.0.0.1:{health_port}/healthz", timeout=1)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{health_port}/readyz", timeout=1).status_code == 404
        context = ssl.create_default_context(cafile=str(keys / "ca.pem"))
        with httpx.Client(verify=context, timeout=5) as http, pytest.raises(httpx.HTTPError):
            http.get(f"https://127.0.0.1:{port}/healthz").raise_for_status()  # no client certificate
    finally:
        _stop(proc)


def test_health_port_equal_to_the_gateway_port_is_refused(workspace_home: Path) -> None:
    """--health-port equal to --port is a one-line usage error, exit 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "mlwarden.cli", "--home", str(workspace_home), "serve", "--port", "8123",
         "--health-port", "8123"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "--health-port must differ" in proc.stderr


def _healthz_count(folder: Path) -> float:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    value = registry.get_sample_value("mlwarden_requests_total", {"route": "/healthz", "status": "200"})
    return value or 0.0


def _per_worker_counts(metrics_dir: Path, scratch: Path) -> dict[str, float]:
    counts = {}
    for file in metrics_dir.glob("counter_*.db"):
        single = scratch / file.stem
        single.mkdir(parents=True, exist_ok=True)
        shutil.copy(file, single / file.name)
        counts[file.stem.removeprefix("counter_")] = _healthz_count(single)
    return counts


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_workers_export_summed_metrics_and_log_json(workspace_home: Path, tmp_path: Path) -> None:
    """serve --workers 2: /metrics counts the requests both workers answered; each worker logs JSON lines."""
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # a previous run's leftovers are cleared
    port = _free_port()
    log = tmp_path / "serve.log"
    proc = _serve(
        workspace_home, "--port", str(port), "--workers", "2",
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "MLWARDEN_LOG_FORMAT": "json"}, out=log,
    )  # fmt: skip
    sent = 0
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", time.monotonic() + 90, proc)
        sent = 1
        assert not (metrics_dir / "counter_999999.db").exists()
        deadline = time.monotonic() + 60
        counts: dict[str, float] = {}
        while time.monotonic() < deadline:
            for _ in range(20):  # a new connection each time, so the kernel hands them to either worker
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"Connection": "close"}).status_code == 200
                sent += 1
            counts = _per_worker_counts(metrics_dir, tmp_path / "one")
            if sum(1 for c in counts.values() if c > 0) >= 2:
                break
        assert sum(1 for c in counts.values() if c > 0) >= 2, counts
        for _ in range(4):  # whichever worker answers /metrics reports every worker's requests
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Connection": "close"}).text
            line = next(ln for ln in text.splitlines() if ln.startswith('mlwarden_requests_total{route="/healthz"'))
            assert float(line.rsplit(" ", 1)[1]) == sent
    finally:
        _stop(proc)
    started = [json.loads(ln) for ln in log.read_text().splitlines() if '"gateway_started"' in ln]
    assert len({entry["pid"] for entry in started}) == 2, log.read_text()[-2000:]
    assert all(entry["level"] == "info" and "timestamp" in entry for entry in started)


def test_invalid_log_format_is_a_one_line_error(workspace_home: Path) -> None:
    """--log-format accepts json or console only."""
    proc = subprocess.run(
        [sys.executable, "-m", "mlwarden.cli", "--home", str(workspace_home), "serve", "--log-format", "xml"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "xml" in proc.stderr


@pytest.fixture
def entrypoint_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MLWARDEN_BIN": str(Path(sys.executable).with_name("mlwarden")),
        "MLWARDEN_RATE_LIMIT": "0",
        "MLWARDEN_HOME": str(tmp_path / "volume"),
    }


@pytest.mark.timeout(120)
def test_container_entrypoint_initialises_an_empty_volume_then_serves(
    tmp_path: Path, entrypoint_env: dict[str, str]
) -> None:
    """docker/entrypoint.sh on an empty volume runs `mlwarden init`, then `serve` answers on its health port."""
    volume = tmp_path / "volume"
    volume.mkdir()
    port, health_port = _free_port(), _free_port()
    proc = subprocess.Popen(
        ["sh", str(ROOT / "docker" / "entrypoint.sh"), "serve", "--port", str(port), "--health-port", str(health_port)],
        env=entrypoint_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            response = _wait_http(f"http://127.0.0.1:{health_port}/healthz", deadline, proc)
            if response.status_code == 200:
                break
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()["status"] == "ready"
        assert (volume / "mlwarden.db").exists()
        assert (volume / "keys").is_dir()
    finally:
        _stop(proc)
        if proc.stderr is not None:
            assert "creating it (mlwarden init)" in proc.stderr.read().decode()
            proc.stderr.close()


def test_container_entrypoint_leaves_a_non_empty_volume_alone(tmp_path: Path, entrypoint_env: dict[str, str]) -> None:
    """A volume holding something else is not initialised: serve refuses it in one line, exit 2."""
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "notes.txt").write_text("not a workspace\n")
    proc = subprocess.run(
        ["sh", str(ROOT / "docker" / "entrypoint.sh"), "serve", "--port", str(_free_port())],
        env=entrypoint_env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert sorted(p.name for p in volume.iterdir()) == ["notes.txt"]
    assert "mlwarden init" not in proc.stderr.split("error:", 1)[0]


def test_container_entrypoint_passes_other_commands_through(tmp_path: Path, entrypoint_env: dict[str, str]) -> None:
    """`docker run IMAGE --version` runs mlwarden --version and creates nothing."""
    proc = subprocess.run(
        ["sh", str(ROOT / "docker" / "entrypoint.sh"), "--version"],
        env=entrypoint_env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert proc.stdout.startswith("mlwarden ")
    assert not (tmp_path / "volume").exists()
