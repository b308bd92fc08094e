"""Personal keys and the policy's approvers: created once and private, parsed fail-closed, persons matched."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlwarden.errors import InvalidInput, KeyFileError
from mlwarden.identity.approvers import parse_approvers
from mlwarden.identity.personal_keys import create_personal_key, load_personal_key, public_key_text
from tests.support.cli import Cli

ME = f"local:{pwd.getpwuid(os.getuid()).pw_name}"


def test_keys_create_writes_a_private_key_and_prints_the_policy_line(cli: Cli, tmp_path: Path) -> None:
    """keys create: NAME.key mode 0600, NAME.pub, one stdout line that parses as an approver; never overwrites."""
    out = tmp_path / "keys"
    result = cli("keys", "create", "--name", "alice", "--out", str(out), use_home=False)
    assert result.code == 0, result.err
    key_file = out / "alice.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    [line] = result.out.splitlines()
    [approver] = parse_approvers(yaml.safe_load("approvers:\n" + line)["approvers"]).entries
    assert approver.name == "alice"
    assert approver.accounts == (ME,)
    assert public_key_text(approver.key) == (out / "alice.pub").read_text().strip()
    assert public_key_text(load_personal_key(key_file).public_key()) == public_key_text(approver.key)
    before = key_file.read_bytes()
    again = cli("keys", "create", "--name", "alice", "--out", str(out), use_home=False)
    assert again.code == 2
    assert "refusing to overwrite" in again.err
    assert key_file.read_bytes() == before
    assert cli("keys", "create", "--name", "../evil", "--out", str(out), use_home=False).code == 2


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    """A private key with group or other permissions is not used for signing."""
    created = create_personal_key("bob", tmp_path)
    os.chmod(created.private_key, 0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        load_personal_key(created.private_key)
    (tmp_path / "junk.key").write_text("not a key")
    os.chmod(tmp_path / "junk.key", 0o600)
    with pytest.raises(KeyFileError):
        load_personal_key(tmp_path / "junk.key")


@pytest.fixture
def key_text(tmp_path: Path) -> str:
    return create_personal_key("k", tmp_path).public_text


@pytest.mark.parametrize(
    "entries",
    [
        {"name": "a"},
        ["not a mapping"],
        [{"name": "a"}],
        [{"name": "a", "key": "ed25519:!!!"}],
        [{"name": "a", "key": "ed25519:AAAA"}],
        [{"name": "a", "key": "rsa:AAAA"}],
        [{"name": "a b", "key": "KEY"}],
        [{"name": "a", "key": "KEY", "role": "admin"}],
        [{"name": "a", "key": "KEY", "accounts": "local:a"}],
        [{"name": "a", "key": "KEY", "accounts": ["key:b"]}],
        [{"name": "a", "key": "KEY", "accounts": [""]}],
        [{"name": "a", "key": "KEY"}, {"name": "a", "key": "KEY2"}],
        [{"name": "a", "key": "KEY"}, {"name": "b", "key": "KEY"}],
        [{"name": "a", "key": "KEY", "accounts": ["local:x"]}, {"name": "b", "key": "KEY2", "accounts": ["local:x"]}],
    ],
)
def test_malformed_approvers_are_an_error(entries: Any, key_text: str, tmp_path: Path) -> None:
    """Every malformed, duplicate or ambiguous approvers entry fails closed."""
    other = create_personal_key("k2", tmp_path).public_text
    raw = yaml.safe_load(yaml.safe_dump(entries).replace("KEY2", other).replace("KEY", key_text))
    with pytest.raises(InvalidInput):
        parse_approvers(raw)


def test_persons_join_a_key_and_its_accounts(key_text: str, tmp_path: Path) -> None:
    """key:NAME and the listed accounts are one person; anything else is its own person."""
    other = create_personal_key("k2", tmp_path).public_text
    approvers = parse_approvers(
        [{"name": "alice", "key": key_text, "accounts": ["local:alice", "token:0123456789abcdef"]},
         {"name": "bob", "key": other}]
    )  # fmt: skip
    assert approvers.same_person("key:alice", "local:alice")
    assert approvers.same_person("token:0123456789abcdef", "key:alice")
    assert not approvers.same_person("key:bob", "local:alice")
    assert not approvers.same_person("local:bob", "key:bob")  # bob lists no accounts
    assert approvers.person_of("local:carol") == "local:carol"
    assert parse_approvers(None).entries == ()
