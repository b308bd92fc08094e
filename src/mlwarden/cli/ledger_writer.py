"""``serve``'s ledger writer: the process that runs the sequencer, and the supervisor that keeps it running.

``serve`` starts the writer before any uvicorn worker and waits until it listens; a
thread of the ``serve`` process waits on it and starts a new one whenever it dies
(workers answer 503 meanwhile and reconnect). ``stop`` sends SIGTERM: the writer
commits what it holds, signs the head and removes its socket.

The writer itself runs ``python -m mlwarden.cli.ledger_writer SOCKET READY_FD`` with the
workspace in the environment, as the workers do.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
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
from mlwarden.workspace import open_workspace

log = structlog.get_logger("mlwarden.serve")
READY = b"ready\n"
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
        read_fd, write_fd = os.pipe()
        try:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
                [sys.executable, "-m", "mlwarden.cli.ledger_writer", str(self.socket_path), str(write_fd)],
                pass_fds=(write_fd,),
                stdout=self._log_fd,
            )
        finally:
            os.close(write_fd)
        try:
            if not _await_ready(read_fd, process, self._start_timeout):
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait(timeout=10)
                raise ConfigError(
                    f"the ledger writer did not start (exit code {process.returncode}); see its log above"
                )
        finally:
            os.close(read_fd)
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
        """SIGTERM the writer and wait for it to sign and exit (SIGKILL after ``timeout``)."""
        with self._lock:
            self._stopping = True
            process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=5)


def _await_ready(read_fd: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether the writer said it listens within ``timeout`` (False if it exited first)."""
    deadline = time.monotonic() + timeout
    received = b""
    while time.monotonic() < deadline:
        readable, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            break
        chunk = os.read(read_fd, 64)
        if not chunk:  # the writer closed the pipe: it exited
            return False
        received += chunk
        if received.endswith(READY):
            return True
    return process.poll() is None and received.endswith(READY)


def main(argv: list[str]) -> None:
    """The writer process: open the workspace, listen on ``argv[0]``, say so on fd ``argv[1]``."""
    configure_logging(LogFormat(os.environ.get(LOG_FORMAT_ENV) or LogFormat.JSON.value))  # serve checked the value
    socket_path, ready_fd = Path(argv[0]), int(argv[1])
    settings = Settings()
    try:
        ws = open_workspace(WorkspaceOptions.from_settings(settings))
    except MlwardenError as exc:
        sys.stderr.write(f"error: the ledger writer cannot open the workspace: {exc.message}\n")
        raise SystemExit(1) from None
    try:
        ws.log.sign_interval = settings.ledger_sign_interval_seconds
        ws.log.checkpoint_wal_in_background()

        def ready() -> None:
            with contextlib.suppress(OSError):
                os.write(ready_fd, READY)
                os.close(ready_fd)

        sequencer.run(ws.log, socket_path, batch_wait=settings.ledger_batch_wait_seconds, on_ready=ready)
    finally:
        ws.close()


if __name__ == "__main__":
    main(sys.argv[1:])
