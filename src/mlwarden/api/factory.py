"""The app factory uvicorn workers import (``mlwarden.api.factory:app``); settings from the environment."""

from __future__ import annotations

import os

from fastapi import FastAPI

from mlwarden.api.app import create_app
from mlwarden.api.logs import LOG_FORMAT_ENV, LogFormat, configure_logging
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.errors import ConfigError


def log_format_from_env() -> LogFormat:
    """``$MLWARDEN_LOG_FORMAT`` (json or console; json when unset)."""
    value = os.environ.get(LOG_FORMAT_ENV) or LogFormat.JSON.value
    try:
        return LogFormat(value.strip().lower())
    except ValueError:
        raise ConfigError(f"{LOG_FORMAT_ENV} must be json or console, got {value!r}") from None


def app() -> FastAPI:
    """A gateway for the workspace named by MLWARDEN_HOME / MLWARDEN_DATABASE_URL, logging as configured."""
    configure_logging(log_format_from_env())  # runs in every worker process
    settings = Settings()
    return create_app(WorkspaceOptions.from_settings(settings), settings)
