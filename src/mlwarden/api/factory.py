"""The app factory uvicorn workers import (``mlwarden.api.factory:app``); settings from the environment."""

from __future__ import annotations

from fastapi import FastAPI

from mlwarden.api.app import create_app
from mlwarden.config import Settings, WorkspaceOptions


def app() -> FastAPI:
    """A gateway for the workspace named by MLWARDEN_HOME / MLWARDEN_DATABASE_URL."""
    settings = Settings()
    return create_app(WorkspaceOptions.from_settings(settings), settings)
