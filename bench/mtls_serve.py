"""mTLS serving: TLS through mlwarden's recording protocol against uvicorn's own TLS, same run.

Both serve the gateway app (``mlwarden.api.factory:app``) of one workspace with one worker
on uvicorn's default loop (uvloop when installed), requiring client certificates from the
workspace CA. The baseline is the wiring ``serve --client-ca`` used before: uvicorn's
``ssl_*`` settings (``loop.create_server(ssl=...)``, uvloop's TLS) with the SPIFFE h11
protocol. The candidate is :func:`mlwarden.api.tls.recording_protocol` (asyncio's
``SSLProtocol`` around the same h11 protocol, refusals counted). For each, from one client
process with ``--threads`` threads:

- ``*_handshakes_per_s``: new connection, full handshake with a good certificate, one
  ``GET /healthz``, close;
- ``*_keepalive_rps``: ``GET /healthz`` on open connections (the per-request TLS cost);
- ``*_refused_per_s``: handshakes with a foreign CA's certificate (refused);

and the server's CPU seconds per operation beside each (``*_cpu_ms``). Prints one JSON object.

Usage: python bench/mtls_serve.py [--seconds S] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local_servers import free_port, stop_group
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.certs import init_ca, issue
from mlwarden.workspace import init_workspace

SPIFFE = "spiffe://example.org/ns/bench/sa/client"
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n"


def _serve(mode: str, port: int, keys: Path) -> None:
    """The server process: uvicorn with the baseline or the recording TLS wiring."""
    import uvicorn

    from mlwarden.api.tls import MutualTLS, SpiffeH11Protocol, recording_protocol

    cert, key, ca = str(keys / "server.pem"), str(keys / "server.key"), str(keys / "ca.pem")
    kwargs: dict[str, Any] = (
        {"ssl_certfile": cert, "ssl_keyfile": key, "ssl_ca_certs": ca, "ssl_cert_reqs": ssl.CERT_REQUIRED,
         "http": SpiffeH11Protocol}
        if mode == "baseline" else {"http": recording_protocol(MutualTLS(cert, key, ca))}
    )  # fmt: skip
    uvicorn.run("mlwarden.api.factory:app", factory=True, host="127.0.0.1", port=port, access_log=False,
                log_level="warning", **kwargs)  # fmt: skip


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _context(ca: Path, cert: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(*cert)
    return context


def _read_answer(tls: ssl.SSLSocket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += tls.recv(4096)


def _handshake(port: int, context: ssl.SSLContext) -> None:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(REQUEST)
        _read_answer(tls)


def _refused(port: int, context: ssl.SSLContext) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(REQUEST)
                if tls.recv(4096):
                    raise RuntimeError("a refused client got an answer")
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            pass


def _keepalive(port: int, context: ssl.SSLContext, until: float) -> int:
    done = 0
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        while time.monotonic() < until:
            tls.sendall(REQUEST)
            _read_answer(tls)
            done += 1
    return done


def _run(threads: int, seconds: float, pid: int, one: Callable[[float], int]) -> tuple[float, float]:
    """Operations per second over ``threads`` threads, and the server's CPU ms per operation."""
    counts = [0] * threads
    until = time.monotonic() + seconds

    def worker(i: int) -> None:
        counts[i] = one(until)

    cpu, start = _cpu_seconds(pid), time.monotonic()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed, used, total = time.monotonic() - start, _cpu_seconds(pid) - cpu, sum(counts)
    return round(total / elapsed, 1), round(1000 * used / max(total, 1), 3)


def _repeat(op: Callable[[], None]) -> Callable[[float], int]:
    def loop(until: float) -> int:
        n = 0
        while time.monotonic() < until:
            op()
            n += 1
        return n

    return loop


def _measure(mode: str, home: Path, certs: dict[str, tuple[Path, Path]], args: argparse.Namespace) -> dict[str, float]:
    keys, port = home / "keys", free_port()
    env = {**os.environ, "MLWARDEN_HOME": str(home), "MLWARDEN_REJECTION_SUMMARY_SECONDS": "1"}
    command = [sys.executable, __file__, "--serve", mode, "--port", str(port), "--keys", str(keys)]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        good, foreign = _context(keys / "ca.pem", certs["good"]), _context(keys / "ca.pem", certs["foreign"])
        deadline = time.monotonic() + 90
        while True:
            try:
                _handshake(port, good)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{mode} server did not start") from None
                time.sleep(0.2)
        out: dict[str, float] = {}
        for name, op in (
            ("handshakes", _repeat(lambda: _handshake(port, good))),
            ("keepalive", lambda until: _keepalive(port, good, until)),
            ("refused", _repeat(lambda: _refused(port, foreign))),
        ):
            rate, cpu_ms = _run(args.threads, args.seconds, proc.pid, op)
            key = "keepalive_rps" if name == "keepalive" else f"{name}_per_s"
            out[f"{mode}_{key}"], out[f"{mode}_{name}_cpu_ms"] = rate, cpu_ms
        return out
    finally:
        stop_group(proc, timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--serve", choices=("baseline", "recording"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--keys", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.port, args.keys)
        return
    with tempfile.TemporaryDirectory(prefix="mlwarden-bench-mtls-") as tmp:
        root = Path(tmp)
        options = WorkspaceOptions.from_settings(Settings(database_url=None), root / "ws")
        init_workspace(options)
        keys = options.paths.keys
        init_ca(keys)
        init_ca(root / "other", name="someone else's CA")
        good = issue(keys, "good", out=root / "certs", spiffe_id=SPIFFE)
        foreign = issue(root / "other", "foreign", out=root / "certs", spiffe_id=SPIFFE)
        certs = {"good": (good.cert, good.key), "foreign": (foreign.cert, foreign.key)}
        result: dict[str, Any] = {"seconds": args.seconds, "threads": args.threads}
        for mode in ("baseline", "recording"):
            result |= _measure(mode, options.paths.home, certs, args)
        for name in ("handshakes_per_s", "keepalive_rps", "refused_per_s"):
            result[f"ratio_{name}"] = round(result[f"recording_{name}"] / max(result[f"baseline_{name}"], 1e-9), 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
