"""Child processes in tests, every wait bounded: lines read by a thread, stderr kept in a file."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

DEFAULT_TIMEOUT = 60.0


class Child:
    """A child whose stdout lines arrive through a queue (reads never block the test) and whose stderr is a file.

    A pipe the test does not drain can fill and stall the child; a pipe the test reads after a
    failure can stay open forever (a grandchild holds it). A file has neither problem.
    """

    def __init__(self, args: Sequence[str], *, stderr_path: Path, env: dict[str, str] | None = None) -> None:
        self.stderr_path = stderr_path
        self._stderr: IO[bytes] = stderr_path.open("wb")
        self.proc = subprocess.Popen(
            list(args), stdout=subprocess.PIPE, stderr=self._stderr, env=env, start_new_session=True
        )
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stream = self.proc.stdout
        if stream is not None:
            for line in iter(stream.readline, b""):
                self._lines.put(line)
        self._lines.put(None)

    def readline(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """The next stdout line; b"" at end of output; raises TimeoutError when none comes in time."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no line from the child within {timeout:g}s; stderr: {self.stderr()}") from None
        if line is None:
            self._lines.put(None)  # stay at end of output
            return b""
        return line

    def kill(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """SIGKILL the child's process group, wait (bounded) and return the stdout it had not read yet."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        rest = []
        while (line := self._lines.get(timeout=timeout)) is not None:
            rest.append(line)
        self._lines.put(None)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return b"".join(rest)

    def stderr(self, limit: int = 4000) -> str:
        """The last ``limit`` characters the child wrote to stderr (reads a file: never blocks)."""
        self._stderr.flush()
        return self.stderr_path.read_bytes()[-limit:].decode(errors="replace")


def wait_listening(
    port: int, proc: subprocess.Popen[bytes], last_words: Callable[[], str], timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection; RuntimeError (with ``last_words()``, e.g. the
    child's stderr) as soon as ``proc`` exits, or when ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited before listening on {port}: {last_words()}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {port} after {timeout:g}s: {last_words()}") from None
            time.sleep(0.1)  # polling the port until the server listens (bounded by the deadline)
