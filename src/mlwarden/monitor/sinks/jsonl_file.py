"""JSON lines file sink: one alert per line, fsynced, rotated by size (``path.1`` … ``path.<keep>``)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from mlwarden.monitor.alert import Alert, Severity
from mlwarden.monitor.sinks.interface import AlertFormat, SinkUnavailable

DEFAULT_MAX_BYTES = 10 << 20
DEFAULT_KEEP = 5


@dataclass(slots=True)
class JsonLinesSink:
    """Appends ``{"idempotency_key": …, "alert": format(alert)}`` lines to ``path`` (mode 0600).

    Before a line would take the file past ``max_bytes``, the file is rotated: ``path.<keep-1>``
    becomes ``path.<keep>`` (the oldest is dropped), …, ``path`` becomes ``path.1``. A line is
    counted as delivered once it is fsynced.
    """

    name: str
    path: Path
    format: AlertFormat = Alert.to_dict
    min_severity: Severity = Severity.LOW
    max_bytes: int = DEFAULT_MAX_BYTES
    keep: int = DEFAULT_KEEP
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def deliver(self, alert: Alert, idempotency_key: str) -> None:
        """Append the alert's line (rotating first when it would not fit)."""
        line = orjson.dumps({"idempotency_key": idempotency_key, "alert": self.format(alert)}) + b"\n"
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self._size() > 0 and self._size() + len(line) > self.max_bytes:
                    self._rotate()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise SinkUnavailable(f"file {self.name}: cannot write {self.path}: {exc.strerror}") from exc

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def rotated(self, number: int) -> Path:
        """The ``number``-th rotated file (1 is the newest)."""
        return self.path.with_name(f"{self.path.name}.{number}")

    def _rotate(self) -> None:
        self.rotated(self.keep).unlink(missing_ok=True)
        for number in range(self.keep - 1, 0, -1):
            if self.rotated(number).exists():
                self.rotated(number).rename(self.rotated(number + 1))
        self.path.rename(self.rotated(1))

    def close(self) -> None:
        """Nothing stays open between deliveries."""
