"""``serve``'s ledger writer: the process that runs the sequencer, and the supervisor that keeps it running.

``serve`` starts the writer before any uvicorn worker and waits until it listens; a
thread of the ``serve`` process waits on it and starts a new one whenever it dies
(workers answer 503 meanwhile and reconnect). The two hold a socket pair, the lifeline:
the writer says ``ready`` on it, and when ``stop`` closes it (or ``serve`` dies) the writer
commits what it holds, signs the head, removes its socket and exits. SIGTERM and SIGINT
sent to the whole process group leave the writer running until the workers are gone.

The writer itself runs ``python -m mlwarden.cli.ledger_writer SOCKET LIFELINE_FD`` with
the workspace in the environment, as the workers do.
"""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import structlog

from mlwarden.api.logs import LOG_FORMAT_ENV, LogFormat, configure_logging
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.errors import ConfigError, MlwardenError
from mlwarden.ledger import sequencer
from mlwarden.ledger.sequencer import READY
from mlwarden.workspace import open_workspace

log = structlog.get_logger("mlwarden.serve")
RESTART_DELAYS = (0.1, 0.5, 1.0, 2.0)


class WriterSupervisor:
    """Start the ledger writer for one ``serve`` and restart it whenever it exits on its own."""

    def __init__(self, socket_path: Path, *, start_timeout: float = 60.0, log_fd: int | None = None) -> None:
        self.socket_path = socket_path
        self._log_fd = log_fd
        self._start_timeout = start_timeout
        self._lock = threading.Lock()
        self._stopping = False
        self._process: subprocess.Popen[bytes] | None = None
        self._lifeline: socket.socket | None = None
        """Our end of the socket pair: the writer says ``ready`` on it, and stops when it closes."""
        self._thread: threading.Thread | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        """The running writer's process id."""
        process = self._process
        return None if process is None else process.pid

    def start(self) -> WriterSupervisor:
        """Start the writer, wait until it listens (or raise :class:`ConfigError`), then watch it."""
        self._process = self._spawn()
        self._thread = threading.Thread(target=self._watch, name="mlwarden-writer-supervisor", daemon=True)
        self._thread.start()
        return self

    def _spawn(self) -> subprocess.Popen[bytes]:
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
                [sys.executable, "-m", "mlwarden.cli.ledger_writer", str(self.socket_path), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdout=self._log_fd,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        if not _await_ready(ours, self._start_timeout):
            ours.close()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(timeout=10)
            raise ConfigError(f"the ledger writer did not start (exit code {process.returncode}); see its log above")
        self._lifeline = ours
        return process

    def _watch(self) -> None:
        failures = 0
        while True:
            process = self._process
            if process is None:
                return
            code = process.wait()
            if self._stopped():
                return
            log.warning("ledger_writer_exited", code=code, restarting=True)
            if self._lifeline is not None:
                self._lifeline.close()  # the dead writer's end is gone; a new pair comes with the new writer
            time.sleep(RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)])  # back off from a crash loop
            with self._lock:
                if self._stopping:
                    return
                try:
                    self._process = self._spawn()
                    self.restarts += 1
                    failures = 0
                except ConfigError as exc:
                    failures += 1
                    log.error("ledger_writer_restart_failed", reason=exc.message)

    def _stopped(self) -> bool:
        with self._lock:
            return self._stopping

    def stop(self, timeout: float = 30.0) -> None:
        """Close the lifeline: the writer commits what it holds, signs and exits (SIGKILL after ``timeout``)."""
        with self._lock:
            self._stopping = True
            process, lifeline = self._process, self._lifeline
        if lifeline is not None:
            lifeline.close()
        if process is not None:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=5)


def _await_ready(lifeline: socket.socket, timeout: float) -> bool:
    """Whether the writer said it listens within ``timeout`` (False if it exited or stayed silent)."""
    deadline = time.monotonic() + timeout
    received = b""
    while not received.endswith(READY) and time.monotonic() < deadline:
        lifeline.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            chunk = lifeline.recv(64)
        except (TimeoutError, OSError):
            return False
        if not chunk:  # the writer closed its end: it exited
            return False
        received += chunk
    return received.endswith(READY)


def main(argv: list[str]) -> None:
    """The writer process: open the workspace, listen on ``argv[0]``, keep the lifeline ``argv[1]``."""
    configure_logging(LogFormat(os.environ.get(LOG_FORMAT_ENV) or LogFormat.JSON.value))  # serve checked the value
    socket_path = Path(argv[0])
    lifeline = socket.socket(fileno=int(argv[1]))
    settings = Settings()
    try:
        ws = open_workspace(WorkspaceOptions.from_settings(settings))
    except MlwardenError as exc:
        sys.stderr.write(f"error: the ledger writer cannot open the workspace: {exc.message}\n")
        raise SystemExit(1) from None
    try:
        ws.log.sign_interval = settings.ledger_sign_interval_seconds
        ws.log.checkpoint_wal_in_background()
        if settings.gc_freeze:  # as in the workers: no full collection over the loaded libraries stalls a batch
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 50, 100)
        sequencer.run(ws.log, socket_path, batch_wait=settings.ledger_batch_wait_seconds, lifeline=lifeline)
    finally:
        ws.close()


if __name__ == "__main__":
    main(sys.argv[1:])
