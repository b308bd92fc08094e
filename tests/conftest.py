"""Shared fixtures: workspaces on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mlwarden.cli.main import main
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.workspace import Workspace, init_workspace, open_workspace
from tests.support.cli import Cli, Result
from tests.support.postgres import Cluster

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server: $MLWARDEN_TEST_POSTGRES_URL, else a throwaway cluster."""
    given = os.environ.get("MLWARDEN_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    try:
        cluster = Cluster.start(durable=False)
    except (FileNotFoundError, OSError) as exc:
        message = f"PostgreSQL server not available ({exc}); install the distribution's postgresql package"
        if IN_CI:
            pytest.fail(f"{message}: in CI a skipped PostgreSQL test is a failure")
        pytest.skip(message)
    try:
        yield cluster.url
    finally:
        cluster.stop()


def _fresh_database(server_url: str, request: pytest.FixtureRequest | None = None) -> str:
    """A new empty database on the server; with ``request``, dropped when the test ends (so the cluster
    does not grow by a database per test, and its removal at the end of the session stays quick)."""
    name = f"mlw_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    if request is not None:
        request.addfinalizer(lambda: _drop_database(server_url, name))
    return server_url.rsplit("/", 1)[0] + "/" + name


def _drop_database(server_url: str, name: str) -> None:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:  # FORCE: a process the test left connected must not keep it
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Run the test once on SQLite and once on PostgreSQL."""
    return str(request.param)


@pytest.fixture
def workspace_options(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> WorkspaceOptions:
    """Options for a fresh workspace on the chosen backend."""
    url = None
    if backend == "postgres":
        url = _fresh_database(request.getfixturevalue("postgres_server"), request)
    return WorkspaceOptions.from_settings(Settings(database_url=url), tmp_path / "ws")


@pytest.fixture
def workspace(workspace_options: WorkspaceOptions) -> Iterator[Workspace]:
    """An initialised, opened workspace."""
    init_workspace(workspace_options)
    ws = open_workspace(workspace_options)
    try:
        yield ws
    finally:
        ws.close()


@pytest.fixture
def sqlite_options(tmp_path: Path) -> WorkspaceOptions:
    """Options for a fresh SQLite workspace (tests that edit the database file directly)."""
    return WorkspaceOptions.from_settings(Settings(database_url=None), tmp_path / "ws")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The workspace folder the ``cli`` fixture passes with --home."""
    return tmp_path / "ws"


@pytest.fixture
def cli(home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli("ledger", "tail")`` runs ``mlwarden --home HOME ledger tail`` in-process and captures its output."""
    monkeypatch.delenv("MLWARDEN_DATABASE_URL", raising=False)

    def run(*args: str, use_home: bool = True) -> Result:
        argv = (["--home", str(home)] if use_home else []) + list(args)
        code = main(argv)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
