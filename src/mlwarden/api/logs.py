"""Log format for gateway processes: structlog JSON lines (the default) or console lines, in every worker."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from enum import StrEnum
from typing import Any

import structlog

LOG_FORMAT_ENV = "MLWARDEN_LOG_FORMAT"

__all__ = ["LOG_FORMAT_ENV", "LogFormat", "configure_logging"]


class LogFormat(StrEnum):
    """How a gateway process writes its log lines."""

    JSON = "json"
    CONSOLE = "console"


def _add_pid(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.setdefault("pid", os.getpid())
    return event


def configure_logging(log_format: LogFormat) -> None:
    """Configure structlog for this process (each uvicorn worker calls it: configuration is per process)."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if log_format is LogFormat.JSON else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_pid,
            renderer,
        ]
    )
