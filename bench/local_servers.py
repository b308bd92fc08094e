"""Servers a benchmark starts on this machine: a free port, waiting until it listens, stopping its process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; exit the benchmark if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{proc.args!r} exited before listening on {port}") from None
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port} after {seconds:g} s")


def start_listening(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """Start ``args`` in a process group of its own (output discarded) and wait until it listens on ``port``."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    wait_listening(port, proc)
    return proc


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM the process group (workers, writer, watcher), SIGKILL it after ``timeout``."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
