"""Everything init writes in a workspace is private: files 0600, folders 0700, whatever the umask (issue 10)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlwarden.config import WorkspaceOptions
from mlwarden.workspace import init_workspace, open_workspace


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask a user could have: any group/other bit left is ours."""
    previous = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(previous)


def test_init_creates_every_file_0600_and_every_folder_0700(sqlite_options: WorkspaceOptions, open_umask: None) -> None:
    """Database, policy.yaml, keys and published checkpoints are 0600; the folders 0700."""
    init_workspace(sqlite_options)
    home = sqlite_options.paths.home
    written = [p for p in home.rglob("*")]
    assert {home / "mlwarden.db", home / "policy.yaml", home / "keys" / "ledger.key"} <= set(written)
    loose = {str(p.relative_to(home)): oct(_mode(p)) for p in written if _mode(p) not in (0o600, 0o700)}
    assert loose == {}
    assert _mode(home) == 0o700


def test_the_wal_created_by_the_first_write_is_0600(sqlite_options: WorkspaceOptions, open_umask: None) -> None:
    """SQLite creates -wal and -shm on the first write with the database's mode: 0600 too."""
    init_workspace(sqlite_options)
    database = sqlite_options.paths.database
    ws = open_workspace(sqlite_options)
    try:
        ws.log.append(kind="external.test", subject="s", body={}, principal="local:test")
        wal, shm = (database.with_name(database.name + suffix) for suffix in ("-wal", "-shm"))
        assert wal.exists()
        assert shm.exists()
        assert (_mode(database), _mode(wal), _mode(shm)) == (0o600, 0o600, 0o600)
        artifacts = sqlite_options.paths.artifacts
        from mlwarden.registry.artifacts import ArtifactStore

        sha = ArtifactStore(artifacts).put(b"blob")
        assert _mode(artifacts / "sha256") == _mode(artifacts / "sha256" / sha[:2]) == 0o700
    finally:
        ws.close()
    published = list(sqlite_options.paths.checkpoints.iterdir())
    assert published
    assert {_mode(p) for p in published} == {0o600}


def test_init_again_tightens_an_older_workspace(sqlite_options: WorkspaceOptions) -> None:
    """A workspace made before this fix (0644 files) is made private by running init again."""
    init_workspace(sqlite_options)
    paths = sqlite_options.paths
    for path in (paths.database, paths.policy, paths.public_key):
        os.chmod(path, 0o644)
    init_workspace(sqlite_options)
    assert [_mode(p) for p in (paths.database, paths.policy, paths.public_key)] == [0o600] * 3
