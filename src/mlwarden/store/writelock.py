"""One writer at a time across processes, woken at once when the lock frees.

SQLite serialises writers itself, but a writer that finds the database busy sleeps in
SQLite's busy handler (1, 2, 5 … 100 ms), which turns contention between gateway workers
into long tail latencies. Taking an ``flock`` on a file next to the database first makes
waiting writers queue in the kernel and wake the moment the previous commit ends.
PostgreSQL needs none of this (row locks wake waiters at once): the lock is a no-op there.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType

from sqlalchemy import Engine


class WriterLock:
    """A re-usable exclusive section: a thread lock inside the process, ``flock`` across processes."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None

    @classmethod
    def for_engine(cls, engine: Engine) -> WriterLock:
        """A lock beside the SQLite file, or a no-op for other databases."""
        if engine.url.get_backend_name() != "sqlite" or not engine.url.database:
            return cls(None)
        return cls(Path(f"{engine.url.database}.write-lock"))

    def __enter__(self) -> WriterLock:
        self._thread_lock.acquire()
        if self._path is not None:
            try:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except OSError:
                self._thread_lock.release()
                raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()
