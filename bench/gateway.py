"""Gateway benchmark: the governed gateway against the strongest honest bare FastAPI + onnxruntime endpoint.

All serve the same skl2onnx model (random forest on scikit-learn's breast-cancer data) on
this machine; `wrk` (Debian package, installed if missing and root) drives each with the
same one-row POST from a separate process, at concurrency 1 and 32, then with 2 and 4
uvicorn workers sharing one workspace. The governed path authenticates a scoped token,
asks the policy decision point, rate-limits, validates, predicts and commits a durable
ledger record before answering. The baseline is the faster of two bare variants
(bench/bare_server.py: an ``async`` handler running onnxruntime inline, with orjson or with
a pydantic body), each reported too (``*_bare_orjson_*``, ``*_bare_pydantic_*``). Prints one
JSON object.

Beside req/s and latency it reports server CPU per request: user + system time of every
process of the server (its session and descendants, including children that exited during
the run), read from /proc before and after each run and divided by the requests wrk
completed. That figure holds up on a busy machine, where req/s does not.

Usage: python bench/gateway.py [--quick] [--workers 1,2,4] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from local_servers import free_port, stop_group, wait_listening
from mlwarden.workspace import open_workspace
from served_model import served_workspace
from wrk_tool import ensure_wrk

HERE = Path(__file__).resolve().parent


def _tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of a server: every process in its session or descended from it.

    Counted from /proc: each live process's own time plus the time of its children already
    reaped (cutime, cstime), so a worker or ledger-writer process that exits mid-run still counts.
    """
    procs: dict[int, tuple[int, int, int]] = {}  # pid -> (ppid, session, ticks)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the command: state, ppid, pgrp, session, ... utime(11), stime(12), cutime(13), cstime(14)
        ticks = sum(int(f) for f in fields[11:15])
        procs[int(stat.parent.name)] = (int(fields[1]), int(fields[3]), ticks)
    if root not in procs:
        return 0.0
    session = procs[root][1]
    mine = {root} | {pid for pid, (_, sid, _) in procs.items() if sid == session}
    grew = True
    while grew:  # descendants that left the session (setsid) are still the server's
        more = {pid for pid, (ppid, _, _) in procs.items() if ppid in mine and pid not in mine}
        mine |= more
        grew = bool(more)
    return sum(procs[pid][2] for pid in mine) / os.sysconf("SC_CLK_TCK")


def _wrk(wrk: str, url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {p: _ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50_ms": lat["50"], "p99_ms": lat["99"], "requests": total,
            "non_2xx": float(errors.group(1)) if errors else 0.0}  # fmt: skip


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _start(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    wait_listening(port, proc)
    time.sleep(0.5 if "--workers" not in command else 2.0)
    return proc


TARGETS = (
    ("bare_orjson", "bare_server:orjson_app", "/predict"),
    ("bare_pydantic", "bare_server:pydantic_app", "/predict"),
    ("governed", None, "/v1/models/bc/predict"),
)
"""(label, uvicorn factory or None for ``mlwarden serve``, path); the bare variants' faster is the baseline."""


def _command(factory: str | None, port: int, workers: int, home: Path) -> list[str]:
    if factory is None:
        return [sys.executable, "-m", "mlwarden.cli", "--home", str(home), "serve",
                "--port", str(port), "--workers", str(workers)]  # fmt: skip
    return [sys.executable, "-m", "uvicorn", factory, "--factory", "--port", str(port),
            "--log-level", "warning", "--no-access-log", "--workers", str(workers)]  # fmt: skip


def _measure(
    wrk: str, command: list[str], env: dict[str, str], port: int, path: str, script: Path,
    label: str, levels: tuple[int, ...], suffix: str, seconds: int,
) -> dict[str, float]:  # fmt: skip
    """Start one server, warm it up, drive it at each concurrency; its figures under ``label``."""
    out: dict[str, float] = {}
    url = f"http://127.0.0.1:{port}{path}"
    proc = _start(command, env, port)
    try:
        _wrk(wrk, url, script, 4, 1)  # warm up
        for c in levels:
            cpu_before = _tree_cpu_seconds(proc.pid)
            m = _wrk(wrk, url, script, c, seconds)
            cpu = _tree_cpu_seconds(proc.pid) - cpu_before
            key = f"c{c}{suffix}"
            out[f"cpu_us_per_req_{label}_{key}"] = cpu * 1e6 / max(m["requests"], 1)
            out[f"rps_{label}_{key}"] = m["rps"]
            out[f"p50_ms_{label}_{key}"] = m["p50_ms"]
            out[f"p99_ms_{label}_{key}"] = m["p99_ms"]
            out[f"non_2xx_{label}_{key}"] = m["non_2xx"]
    finally:
        stop_group(proc)
    return out


def _baseline(result: dict[str, Any], key: str) -> None:
    """The faster bare variant at ``key`` becomes ``bare``; the governed/bare ratios follow."""
    best = max(("bare_orjson", "bare_pydantic"), key=lambda v: float(result[f"rps_{v}_{key}"]))
    result[f"bare_baseline_{key}"] = best
    for metric in ("cpu_us_per_req", "rps", "p50_ms", "p99_ms", "non_2xx"):
        result[f"{metric}_bare_{key}"] = result[f"{metric}_{best}_{key}"]
    result[f"rps_ratio_{key}"] = round(result[f"rps_governed_{key}"] / result[f"rps_bare_{key}"], 3)
    result[f"p99_ratio_{key}"] = round(result[f"p99_ms_governed_{key}"] / result[f"p99_ms_bare_{key}"], 3)
    result[f"cpu_ratio_{key}"] = round(
        result[f"cpu_us_per_req_governed_{key}"] / result[f"cpu_us_per_req_bare_{key}"], 3
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per run instead of 8")
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts (default 1,2,4)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of all targets back to back; medians reported")
    args = parser.parse_args()
    seconds = 3 if args.quick else 8
    wrk = ensure_wrk()
    root = Path(tempfile.mkdtemp(prefix="mlwarden-gw-bench-"))
    result: dict[str, Any] = {}
    try:
        served = served_workspace(root, None)
        options, token, body = served.options, served.token, json.dumps(served.body)
        script = root / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(body)}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        )
        path_env = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(HERE)) if p)
        env = {**os.environ, "BARE_MODEL": str(served.onnx), "MLWARDEN_RATE_LIMIT": "0", "PYTHONPATH": path_env}
        for workers in (int(w) for w in args.workers.split(",")):
            levels = (1, 32) if workers == 1 else (32,)
            suffix = "" if workers == 1 else f"_w{workers}"
            rounds: list[dict[str, float]] = []
            for _ in range(args.rounds):  # the targets back to back, round after round
                measured: dict[str, float] = {}
                for label, factory, path in TARGETS:
                    port = free_port()
                    command = _command(factory, port, workers, options.paths.home)
                    measured.update(_measure(wrk, command, env, port, path, script, label, levels, suffix, seconds))
                rounds.append(measured)
            result.update({key: round(statistics.median(r[key] for r in rounds), 3) for key in rounds[0]})
            for c in levels:
                _baseline(result, f"c{c}{suffix}")
        if "rps_governed_c32_w2" in result:
            result["w2_scaling_governed"] = round(result["rps_governed_c32_w2"] / result["rps_governed_c32"], 3)
        check = open_workspace(options)
        result["ledger_entries_after"] = check.log.size()
        result["ledger_verifies"] = check.log.verify().ok
        check.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["seconds_per_run"] = seconds
    result["machine"] = {"cpus": os.cpu_count(), "load_generator": "wrk (separate process, same machine)"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
