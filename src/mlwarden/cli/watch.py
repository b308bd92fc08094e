"""``mlwarden watch``: run the ledger watcher (the same loop ``serve`` runs in its own process).

Only the holder of the ``monitor.watcher`` lease watches, so any number of ``watch`` or
``serve`` processes on one workspace raise each alert once. ``serve`` starts it as
``python -m mlwarden.cli.watch`` with a lifeline pipe: when ``serve`` exits, so does the watcher.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Annotated

import structlog
import typer

from mlwarden.cli.context import print_json, state
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.errors import MlwardenError
from mlwarden.monitor.delivery import watcher_hooks
from mlwarden.monitor.rules_file import load_rules
from mlwarden.monitor.service import workspace_watcher
from mlwarden.monitor.sink_config import load_sinks
from mlwarden.monitor.watcher import WATCHER_LEASE
from mlwarden.monitor.workspace_sinks import delivery_loop
from mlwarden.store.lease import Lease, lease_engine
from mlwarden.workspace import Workspace, open_workspace

log = structlog.get_logger("mlwarden.watch")

NICENESS = 10
"""How much lower than ``serve``'s the watcher's CPU priority is."""


def watch(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Process what is in the ledger now, then exit.")] = False,
    batch: Annotated[int, typer.Option("--batch", min=1, max=100_000, help="Entries per transaction.")] = 5000,
) -> None:
    """Watch the ledger and raise alerts (rules: the ``alerts:`` section of policy.yaml)."""
    logs_to_stderr()  # stdout carries only the result
    ws = state(ctx).open()
    try:
        if once:
            loop = delivery_loop(ws, environ=os.environ)
            watcher = workspace_watcher(ws, batch=batch, on_alert=loop.on_alert)
            while watcher.tick():
                pass
            delivered = loop.run_once()  # one bounded pass: what is not delivered waits in the outbox
            print_json({"cursor": watcher.cursor(), "processed": watcher.processed,
                        "raised": sum(watcher.raised.values()), "delivery": delivered.to_json()})  # fmt: skip
            return
        run_until_stopped(ws, batch=batch)
    finally:
        ws.close()


def logs_to_stderr() -> None:
    """Send this process's structured logs to (the current) stderr."""
    structlog.configure(logger_factory=lambda *_args: structlog.PrintLogger(sys.stderr))


def run_until_stopped(ws: Workspace, *, batch: int = 5000, lifeline: int | None = None) -> None:
    """Hold the lease and watch until SIGTERM/SIGINT (or until ``lifeline``'s other end closes)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if lifeline is not None:
        threading.Thread(target=_await_eof, args=(lifeline, stop), daemon=True).start()
    hooks = watcher_hooks(delivery_loop(ws, environ=os.environ))  # a bad sink config stops here, naming the line
    lease = Lease(lease_engine(ws.options.database_url, timeout=2.0), WATCHER_LEASE).start()
    try:
        watcher = workspace_watcher(ws, lease=lease, batch=batch, on_alert=hooks.on_alert)
        watcher.tick_hooks.append(hooks.tick)
        watcher.run(stop)
    finally:
        hooks.close()
        lease.close()
        lease.engine.dispose()


def _await_eof(fd: int, stop: threading.Event) -> None:
    try:
        while os.read(fd, 64):
            pass
    except OSError:
        pass
    stop.set()


def main(argv: list[str]) -> None:
    """``python -m mlwarden.cli.watch [LIFELINE_FD]``: the watcher process ``serve`` starts.

    ``serve`` starts it at a lower CPU priority than the workers (see :data:`_LAUNCH`): on a
    busy machine predictions come first and the watcher catches up (its lag is a metric).
    """
    try:
        ws = open_workspace(WorkspaceOptions.from_settings(Settings()))
    except MlwardenError as exc:
        sys.stderr.write(f"error: the watcher cannot open the workspace: {exc.message}\n")
        raise SystemExit(1) from None
    try:
        run_until_stopped(ws, lifeline=int(argv[0]) if argv else None)
    except MlwardenError as exc:
        sys.stderr.write(f"error: the watcher stopped: {exc.message}\n")
        raise SystemExit(1) from None
    finally:
        ws.close()


if __name__ == "__main__":
    main(sys.argv[1:])


_LAUNCH = (
    "import os, sys\n"
    f"os.nice({NICENESS})  # before the imports: loading them must not compete with the workers either\n"
    "from mlwarden.cli.watch import main\n"
    "main(sys.argv[1:])\n"
)


class WatcherProcess:
    """``serve``'s watcher: a child process holding a lifeline pipe (it exits when the pipe closes).

    A watcher that dies (a crash, the OOM killer, a database outage it gave up on) is started
    again after a backoff of 0.5 s doubling to 30 s: alerts are late, never lost, since the
    cursor is in the database and the new process resumes from it.
    """

    RESTART_FIRST = 0.5
    RESTART_MAX = 30.0

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._guard: threading.Thread | None = None
        self.restarts = 0

    def start(self, policy: Path) -> WatcherProcess:
        """Check the rules and sinks (a bad one stops ``serve`` here, naming the line), then start the watcher."""
        load_rules(policy)
        load_sinks(policy, environ=os.environ)
        self._spawn()
        self._guard = threading.Thread(target=self._supervise, name="watcher-supervisor", daemon=True)
        self._guard.start()
        return self

    @property
    def pid(self) -> int | None:
        """The running watcher's process id."""
        with self._lock:
            return None if self._process is None else self._process.pid

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            if self._lifeline is not None:
                os.close(self._lifeline)  # the old process's lifeline: it is gone, or must go
            read_end, write_end = os.pipe()
            try:
                self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
                    [sys.executable, "-c", _LAUNCH, str(read_end)], pass_fds=(read_end,)
                )
            finally:
                os.close(read_end)
            self._lifeline = write_end

    def _supervise(self) -> None:
        delay = self.RESTART_FIRST
        while not self._stopping.is_set():
            with self._lock:
                process = self._process
            if process is None:
                return
            code = process.wait()
            if self._stopping.is_set():
                return
            log.warning("watcher_exited", code=code, restart_in_s=delay)
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, self.RESTART_MAX)
            self.restarts += 1
            self._spawn()

    def stop(self, timeout: float = 15.0) -> None:
        """Close the lifeline; the watcher finishes its tick and exits (killed after ``timeout``)."""
        self._stopping.set()
        with self._lock:
            if self._lifeline is not None:
                os.close(self._lifeline)
                self._lifeline = None
            process = self._process
        if process is not None:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._guard is not None:
            self._guard.join(timeout=10)
