"""Offline bundle verification trusts only the key the auditor pins, never the key a bundle carries."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlwarden.ledger import merkle
from mlwarden.ledger.notes import Checkpoint, NoteSigner, NoteVerifier
from tests.unit.cli.conftest import Cli


@pytest.fixture
def exported(cli: Cli, home: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    """A 12-entry workspace exported to a bundle: (bundle, the auditor's copy of the public key, fingerprint)."""
    init = cli("init", "--json")
    assert init.code == 0, init.err
    fingerprint = json.loads(init.out)["public_key_fingerprint"]
    for i in range(12):
        result = cli("ledger", "record", "--kind", "external.deploy", "--subject", f"svc:{i}", "--body", f'{{"n":{i}}}')
        assert result.code == 0, result.err
    assert cli("ledger", "checkpoint").code == 0
    bundle = tmp_path / "bundle"
    assert cli("ledger", "export", str(bundle)).code == 0
    pinned = tmp_path / "auditor" / "ledger.pub"
    pinned.parent.mkdir()
    shutil.copy(home / "keys" / "ledger.pub", pinned)
    shutil.rmtree(home)
    return bundle, pinned, fingerprint


def _verify(cli: Cli, bundle: Path, *pin: str) -> tuple[int, dict[str, object], str]:
    result = cli("ledger", "verify", "--bundle", str(bundle), *pin, "--json", use_home=False)
    return result.code, (json.loads(result.out) if result.out else {}), result.err


def _resign(bundle: Path, *, keep_public_key: bool) -> NoteSigner:
    """The attack: rewrite entry 3, rebuild the tree and re-sign every checkpoint with a fresh ed25519 key."""
    original = NoteVerifier.parse((bundle / "ledger.pub").read_text())
    attacker = NoteSigner(original.name, Ed25519PrivateKey.generate())  # same origin name, another key
    lines = (bundle / "entries.jsonl").read_bytes().splitlines()
    lines[3] = lines[3].replace(b'"n":3', b'"n":333')
    (bundle / "entries.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    for note_path in (bundle / "checkpoints").glob("*.txt"):
        size = int(note_path.read_text().split("\n")[1])
        forged = Checkpoint(original.name, size, merkle.merkle_root(lines[:size]))
        note_path.write_text(forged.sign(attacker))
    if not keep_public_key:
        (bundle / "ledger.pub").write_text(attacker.verifier().vkey() + "\n")
    return attacker


def test_bundle_without_a_pinned_key_is_refused(cli: Cli, exported: tuple[Path, Path, str]) -> None:
    """--bundle with neither --public-key nor --key-fingerprint exits 2 with one line saying why."""
    bundle, _pinned, _fp = exported
    result = cli("ledger", "verify", "--bundle", str(bundle), use_home=False)
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "--public-key" in result.err
    assert "--key-fingerprint" in result.err
    assert result.out == ""


def test_init_prints_the_fingerprint_of_the_raw_public_key(cli: Cli, home: Path) -> None:
    """The fingerprint init prints (text and JSON) is the hex SHA-256 of the raw ed25519 key in ledger.pub."""
    text = cli("init")
    assert text.code == 0, text.err
    raw = NoteVerifier.parse((home / "keys" / "ledger.pub").read_text()).public_raw
    expected = hashlib.sha256(raw).hexdigest()
    assert f"public key fingerprint  {expected}" in text.out
    assert json.loads(cli("init", "--json").out)["public_key_fingerprint"] == expected


def test_intact_bundle_verifies_with_a_pinned_key_and_names_it(cli: Cli, exported: tuple[Path, Path, str]) -> None:
    """Pinned by key file or by fingerprint, an intact bundle verifies and the report names the key used."""
    bundle, pinned, fingerprint = exported
    name = NoteVerifier.parse(pinned.read_text()).name
    for pin in (
        ("--public-key", str(pinned)),
        ("--key-fingerprint", fingerprint),
        ("--key-fingerprint", "SHA256:" + fingerprint.upper()),
    ):
        code, report, err = _verify(cli, bundle, *pin)
        assert code == 0, err
        assert report["key"] == {"name": name, "fingerprint": fingerprint}
        assert report["size"] == 12
    text = cli("ledger", "verify", "--bundle", str(bundle), "--key-fingerprint", fingerprint, use_home=False)
    assert text.code == 0
    assert f"verified with key {name} (fingerprint {fingerprint})" in text.out


def test_wrong_fingerprint_is_a_key_mismatch(cli: Cli, exported: tuple[Path, Path, str]) -> None:
    """An intact bundle checked against another fingerprint fails with exit 1, naming both keys."""
    bundle, _pinned, fingerprint = exported
    other = hashlib.sha256(b"someone else's key").hexdigest()
    code, report, _err = _verify(cli, bundle, "--key-fingerprint", other)
    assert code == 1
    assert report["problem"] == "key mismatch"
    assert other in str(report["message"])
    assert fingerprint in str(report["message"])
    text = cli("ledger", "verify", "--bundle", str(bundle), "--key-fingerprint", other, use_home=False)
    assert text.code == 1
    assert "key mismatch" in text.err
    assert text.err.count("\n") == 1


@pytest.mark.parametrize("bad", ["abc", "g" * 64, "sha512:" + "0" * 64, ""])
def test_malformed_fingerprint_is_bad_input(cli: Cli, exported: tuple[Path, Path, str], bad: str) -> None:
    """A fingerprint that is not 64 hex digits is exit 2, not a verdict."""
    bundle, _pinned, _fp = exported
    result = cli("ledger", "verify", "--bundle", str(bundle), "--key-fingerprint", bad, use_home=False)
    assert result.code == 2
    assert "fingerprint" in result.err
    assert result.err.count("\n") == 1


def test_key_file_and_fingerprint_that_disagree_are_bad_input(cli: Cli, exported: tuple[Path, Path, str]) -> None:
    """Pinning a key file and a fingerprint of another key is exit 2."""
    bundle, pinned, _fp = exported
    other = hashlib.sha256(b"x").hexdigest()
    result = cli(
        "ledger",
        "verify",
        "--bundle",
        str(bundle),
        "--public-key",
        str(pinned),
        "--key-fingerprint",
        other,
        use_home=False,
    )
    assert result.code == 2
    assert "does not have the pinned fingerprint" in result.err


def test_resigned_bundle_with_its_own_public_key_is_refused(cli: Cli, exported: tuple[Path, Path, str]) -> None:
    """A rewritten log re-signed with a fresh key, shipping that key as ledger.pub, fails against the pinned key."""
    bundle, pinned, fingerprint = exported
    attacker = _resign(bundle, keep_public_key=False)
    forged_fp = attacker.verifier().fingerprint
    # the forgery is self-consistent: trusting the attacker's key would accept it
    assert _verify(cli, bundle, "--key-fingerprint", forged_fp)[0] == 0
    for pin in (("--public-key", str(pinned)), ("--key-fingerprint", fingerprint)):
        code, report, _err = _verify(cli, bundle, *pin)
        assert code == 1
        assert report["ok"] is False
        assert report["problem"] == "key mismatch"
        assert forged_fp in str(report["message"])
        assert report["key"]["fingerprint"] == fingerprint  # type: ignore[index]


def test_resigned_bundle_keeping_the_original_public_key_is_refused(cli: Cli, exported: tuple[Path, Path, str]) -> None:
    """Re-signed checkpoints beside the original ledger.pub fail: no checkpoint is signed by the pinned key."""
    bundle, pinned, fingerprint = exported
    attacker = _resign(bundle, keep_public_key=True)
    for pin in (("--public-key", str(pinned)), ("--key-fingerprint", fingerprint)):
        code, report, _err = _verify(cli, bundle, *pin)
        assert code == 1
        assert report["problem"] == "key mismatch"
        assert attacker.verifier().key_id.hex() in str(report["message"])


def test_workspace_verify_names_its_key_and_honours_a_pin(cli: Cli, home: Path) -> None:
    """`ledger verify` on a workspace says which key it used; a pin of another key is a key mismatch."""
    fingerprint = json.loads(cli("init", "--json").out)["public_key_fingerprint"]
    cli("ledger", "record", "--kind", "external.deploy", "--subject", "svc", "--body", "{}")
    result = cli("ledger", "verify", "--json", "--key-fingerprint", fingerprint)
    assert result.code == 0, result.err
    assert json.loads(result.out)["key"]["fingerprint"] == fingerprint
    other = hashlib.sha256(b"y").hexdigest()
    result = cli("ledger", "verify", "--json", "--key-fingerprint", other)
    assert result.code == 1
    assert json.loads(result.out)["problem"] == "key mismatch"
