"""The workspace key-encryption key: file format and mode, wrapping bound to its context, subject tags."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from mlwarden.config import WorkspaceOptions
from mlwarden.errors import KeyFileError
from mlwarden.privacy.errors import KeyUnwrapFailed
from mlwarden.privacy.kek import KeyEncryptionKey, LocalKek, read_kek, write_kek
from mlwarden.store.engine import create_db_engine, write_transaction
from mlwarden.store.schema import privacy_keys, privacy_payloads
from mlwarden.workspace import init_workspace


def test_written_kek_is_private_and_loads(tmp_path: Path) -> None:
    """write_kek creates a 0600 file of the documented one-line format that read_kek loads back."""
    path = tmp_path / "keys" / "privacy.kek"
    write_kek(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("mlwarden-kek-v1 ")
    assert len(read_kek(path)) == 32


def test_write_never_replaces_an_existing_kek(tmp_path: Path) -> None:
    """A second write_kek fails and leaves the first key as it was."""
    path = tmp_path / "privacy.kek"
    write_kek(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_kek(path)
    assert path.read_bytes() == before


def test_kek_readable_by_others_is_refused(tmp_path: Path) -> None:
    """Like the signing key, a KEK with group or other permissions is refused, naming chmod 600."""
    path = tmp_path / "privacy.kek"
    write_kek(path)
    os.chmod(path, 0o640)
    with pytest.raises(KeyFileError, match=r"readable by others.*chmod 600"):
        read_kek(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"mlwarden-kek-v1", b"mlwarden-kek-v1 AAAA\n", b"other-v1 " + b"A" * 44 + b"\n", b"\xff\xfe", b"x" * 2000],
)
def test_corrupted_kek_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    """Truncated, foreign, binary or oversized files are KeyFileError naming the path, never a traceback."""
    path = tmp_path / "privacy.kek"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(KeyFileError, match=re.escape(str(path))):
        read_kek(path)


def test_missing_kek_names_init(tmp_path: Path) -> None:
    """A missing KEK says how to get one."""
    with pytest.raises(KeyFileError, match=r"missing.*mlwarden init"):
        read_kek(tmp_path / "privacy.kek")


def test_unwrap_needs_the_same_context_and_the_same_kek() -> None:
    """A wrapped key opens only with its context under its KEK; otherwise KeyUnwrapFailed."""
    kek, other = LocalKek(b"\x01" * 32), LocalKek(b"\x02" * 32)
    assert isinstance(kek, KeyEncryptionKey)
    wrapped = kek.wrap(b"k" * 32, b"context-a")
    assert kek.unwrap(wrapped, b"context-a") == b"k" * 32
    with pytest.raises(KeyUnwrapFailed):
        kek.unwrap(wrapped, b"context-b")
    with pytest.raises(KeyUnwrapFailed):
        other.unwrap(wrapped, b"context-a")
    with pytest.raises(KeyUnwrapFailed, match="truncated"):
        kek.unwrap(wrapped[:12], b"context-a")
    assert kek.kek_id != other.kek_id


def test_subject_tags_are_keyed_and_deterministic() -> None:
    """The same subject gets the same tag under one KEK, another tag under another KEK, and never itself."""
    kek, other = LocalKek(b"\x01" * 32), LocalKek(b"\x02" * 32)
    assert kek.subject_tag(b"customer-42") == kek.subject_tag(b"customer-42")
    assert kek.subject_tag(b"customer-42") != kek.subject_tag(b"customer-43")
    assert kek.subject_tag(b"customer-42") != other.subject_tag(b"customer-42")
    assert b"customer-42" not in kek.subject_tag(b"customer-42")


def test_init_creates_the_kek_beside_the_signing_key(workspace_options: WorkspaceOptions) -> None:
    """mlwarden init writes keys/privacy.kek (0600) and a second init keeps the same key."""
    init_workspace(workspace_options)
    path = workspace_options.paths.privacy_kek
    assert path.parent == workspace_options.paths.signing_key.parent
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = read_kek(path)
    os.chmod(path, 0o644)
    init_workspace(workspace_options)
    assert read_kek(path) == first  # tightened back to 0600, same key


def test_init_refuses_to_replace_a_lost_kek_when_keys_are_stored(workspace_options: WorkspaceOptions) -> None:
    """With wrapped data keys in the database, a missing KEK is an error, not a silent new key."""
    init_workspace(workspace_options)
    engine = create_db_engine(workspace_options.database_url)
    try:
        with write_transaction(engine) as conn:
            conn.execute(
                privacy_keys.insert().values(
                    key_id="a" * 32,
                    scope_tag="b" * 64,
                    field="inputs",
                    day="2026-01-01",
                    kek_id="c" * 16,
                    wrapped=b"x" * 60,
                    created="2026-01-01T00:00:00+00:00",
                )
            )
    finally:
        engine.dispose()
    workspace_options.paths.privacy_kek.unlink()
    with pytest.raises(KeyFileError, match=r"holds sealed personal data.*privacy\.kek is missing"):
        init_workspace(workspace_options)
    assert not workspace_options.paths.privacy_kek.exists()


def test_init_refuses_to_replace_a_lost_kek_when_only_inline_keys_are_stored(
    workspace_options: WorkspaceOptions,
) -> None:
    """A payload row carrying its own wrapped key (no key of the day anywhere) also needs the old KEK."""
    init_workspace(workspace_options)
    engine = create_db_engine(workspace_options.database_url)
    try:
        with write_transaction(engine) as conn:
            conn.execute(
                privacy_payloads.insert().values(
                    decision_id="d-1", field="expected", key_id="a" * 32, day="2026-01-01", kek_id="c" * 16,
                    wrapped_key=b"x" * 60, nonce=b"n" * 12, ciphertext=b"c" * 40,
                )
            )  # fmt: skip
    finally:
        engine.dispose()
    workspace_options.paths.privacy_kek.unlink()
    with pytest.raises(KeyFileError, match=r"holds sealed personal data.*privacy\.kek is missing"):
        init_workspace(workspace_options)
    assert not workspace_options.paths.privacy_kek.exists()
