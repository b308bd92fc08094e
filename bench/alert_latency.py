"""Alert latency: from the commit of a triggering entry to a local webhook receiver holding its alert, under load.

A real `mlwarden serve` answers a paced `wrk` load (about --rate predictions/s) and runs its
own watcher process (every built-in rule, the durable outbox, the webhook sink); a real
receiver process (`mlwarden sinks receive`) verifies each delivery's signature and writes it
with its arrival time. This process commits, now and then, one triggering entry (a
``model.stage_tampered`` entry: a stage changed outside the gates, which ``governance.event``
answers with one alert) straight into the workspace's ledger, and notes when the commit
returned. So `alert_latency_p99_ms` covers the whole path: committed → read by the watcher
(it polls every 0.2 s when caught up) → rules → ``alert.raised`` + outbox row → proven →
signed → POSTed → written by the receiver. The alert's id is derived from the rule and its
evidence, so each arrival is matched to its trigger exactly.

Baseline, same run, interleaved with the triggers: a bare signed HTTP POST of a payload of the
same kind from this process to the same receiver (send → written).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.monitor.alert import alert_id
from mlwarden.monitor.rules.events import GOVERNANCE
from mlwarden.monitor.webhook_signature import sign_webhook
from mlwarden.workspace import Workspace, open_workspace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_servers import free_port, start_listening, stop_group
from served_model import served_workspace
from wrk_tool import ensure_wrk

TAMPERED = "model.stage_tampered"

SECRET = "bench-secret-0123456789abcdef0123"  # noqa: S105 - a throwaway secret for a throwaway workspace
SECRET_ENV = "MLWARDEN_BENCH_WEBHOOK_SECRET"  # noqa: S105 - a variable name


def _paced_script(path: Path, body: dict[str, Any], token: str, delay_ms: float) -> None:
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        f"function delay() return {delay_ms:.3f} end\n"
    )


def _wrk_rate(wrk: str, script: Path, connections: int, seconds: int, url: str) -> float:
    out = subprocess.run([wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
                         capture_output=True, text=True, check=True, timeout=seconds + 60).stdout  # fmt: skip
    return float(out.split("Requests/sec:")[1].split()[0])


def _trigger(ws: Workspace, n: int) -> tuple[str, float]:
    """Commit one entry that ``governance.event`` answers with an alert; the alert's id and the commit time."""
    receipt = ws.log.append(kind=TAMPERED, subject="model:bc", principal="system:bench",
                            body={"version": 1, "stage": "production", "n": n})  # fmt: skip
    committed = time.time()
    return alert_id(GOVERNANCE, receipt.index, receipt.index, f"{TAMPERED}@{receipt.index}"), committed


def _bare_post(client: httpx.Client, url: str, n: int, payload: dict[str, Any]) -> tuple[str, float]:
    body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    key = f"bare-{n}"
    sent = time.time()
    headers = {"Content-Type": "application/json", "Idempotency-Key": key,
               **sign_webhook(SECRET.encode(), body, int(sent))}  # fmt: skip
    client.post(url, content=body, headers=headers).raise_for_status()
    return key, sent


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p99_ms": round(p99 * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15 s of load and 40 alerts (default: 40 s, 120)")
    parser.add_argument("--rate", type=int, default=500, help="predictions per second to hold (paced wrk)")
    args = parser.parse_args()
    seconds, alerts = (15, 40) if args.quick else (40, 120)
    wrk = ensure_wrk()
    root = Path(tempfile.mkdtemp(prefix="mlwarden-alert-bench-"))
    served = served_workspace(root, None)
    home = served.options.paths.home
    receiver_port, serve_port = free_port(), free_port()
    received = root / "received.jsonl"
    policy = home / "policy.yaml"
    policy.write_text(policy.read_text() + f"\nalerts:\n  sinks:\n    - name: bench\n      type: webhook\n"
                      f"      url: http://127.0.0.1:{receiver_port}/\n      secret_env: {SECRET_ENV}\n")  # fmt: skip
    env = {**os.environ, SECRET_ENV: SECRET, "MLWARDEN_RATE_LIMIT": "0"}
    # 100 connections, each waiting `delay` ms between requests: about --rate requests/s in all (the answer
    # time, a few ms, comes on top of the delay, so the rate reached is a little lower: it is reported).
    connections = 100
    delay_ms = connections * 1000 / args.rate
    mlwarden = [sys.executable, "-m", "mlwarden.cli"]
    receiver = start_listening([*mlwarden, "sinks", "receive", "--port", str(receiver_port), "--out", str(received),
                                "--secret-env", SECRET_ENV], env, receiver_port)  # fmt: skip
    server = start_listening([*mlwarden, "--home", str(home), "serve", "--port", str(serve_port)], env, serve_port)
    url = f"http://127.0.0.1:{serve_port}/v1/models/bc/predict"
    script = root / "paced.lua"
    _paced_script(script, served.body, served.token, delay_ms)
    # Calibrate: each request's answer time adds to its delay; take it out so the rate is the one asked for.
    calibration = _wrk_rate(wrk, script, connections, 3, url)
    answer_ms = max(0.0, connections * 1000 / calibration - delay_ms)
    delay_ms = max(1.0, connections * 1000 / args.rate - answer_ms)
    _paced_script(script, served.body, served.token, delay_ms)
    ws = open_workspace(WorkspaceOptions.from_settings(Settings(database_url=None), home))
    committed: dict[str, float] = {}
    bare_sent: dict[str, float] = {}
    result: dict[str, Any] = {}
    try:
        load = subprocess.Popen([wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        time.sleep(3)  # let the paced load reach its steady rate before the first alert
        interval = (seconds - 6) / alerts
        payload = {"alert_id": "bare", "rule": GOVERNANCE, "severity": "high"}
        with httpx.Client(timeout=10) as client:
            for n in range(alerts):
                key, at = _trigger(ws, n)
                committed[key] = at
                bare_key, bare_at = _bare_post(client, f"http://127.0.0.1:{receiver_port}/", n, payload)
                bare_sent[bare_key] = bare_at
                time.sleep(interval)  # pacing the alerts, not synchronisation
        out, _ = load.communicate(timeout=seconds + 60)
        deadline = time.monotonic() + 60
        arrivals: dict[str, float] = {}
        while time.monotonic() < deadline:  # bounded wait for the last deliveries
            arrivals = {}
            for line in received.read_text().splitlines() if received.exists() else []:
                record = json.loads(line)
                arrivals[record["idempotency_key"].split("/")[0]] = record["received_at"]
            if all(k in arrivals for k in committed):
                break
            threading.Event().wait(0.1)
        latencies = [arrivals[k] - committed[k] for k in committed if k in arrivals]
        bare = [arrivals[k] - bare_sent[k] for k in bare_sent if k in arrivals]
        rate = float(out.split("Requests/sec:")[1].split()[0])
        non_2xx = out.split("Non-2xx or 3xx responses:")[1].split()[0] if "Non-2xx" in out else "0"
        measured = _percentiles(latencies)
        baseline = _percentiles(bare)
        result = {
            "alert_latency_p99_ms": measured["p99_ms"],
            "alert_latency_p50_ms": measured["p50_ms"],
            "alert_latency_max_ms": measured["max_ms"],
            "baseline_bare_post_p99_ms": baseline["p99_ms"],
            "baseline_bare_post_p50_ms": baseline["p50_ms"],
            "alerts": alerts,
            "alerts_delivered": len(latencies),
            "predictions_per_s": rate,
            "predictions_non_2xx": int(non_2xx),
            "target_alert_latency_p99_ms": 1000,
            "scope": "commit of the triggering entry -> serve's watcher -> outbox -> signed webhook -> receiver",
            "quick": args.quick,
        }
    finally:
        ws.close()
        stop_group(server)
        stop_group(receiver)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
