"""The ledger's Ed25519 signing key on disk: created once with mode 0600, checked on every load."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from mlwarden.errors import InvalidInput, KeyFileError
from mlwarden.ledger.notes import NoteSigner, NoteVerifier

MAX_KEY_FILE = 16 * 1024


def write_private_key(path: Path) -> None:
    """Create a new Ed25519 key at ``path`` (mode 0600); never overwrite an existing file."""
    pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.link(tmp, path)  # fails if the key appeared meanwhile: never replace a key
    tmp.unlink()


def read_private_key(path: Path, what: str, missing: str) -> Ed25519PrivateKey:
    """An Ed25519 PEM key readable by its owner only; :class:`KeyFileError` naming what is wrong.

    ``what`` names the key in messages ("signing key"), ``missing`` says how to get one.
    """
    try:
        st = path.stat()
        if st.st_size > MAX_KEY_FILE:
            raise KeyFileError(f"{what} {path} is {st.st_size} bytes, too large to be a key")
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyFileError(f"{what} {path} is missing ({missing})") from exc
    except OSError as exc:
        raise KeyFileError(f"{what} {path} cannot be read: {exc.strerror}") from exc
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise KeyFileError(f"{what} {path} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}); run chmod 600")
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{what} {path} is corrupted: not a PEM private key without a password") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{what} {path} is not an ed25519 key")
    return key


def load_signer(path: Path, name: str) -> NoteSigner:
    """Load the signing key; raise :class:`KeyFileError` naming what is wrong with the file."""
    key = read_private_key(path, "signing key", "run `mlwarden init`")
    try:
        return NoteSigner(name, key)
    except InvalidInput as exc:
        raise KeyFileError(f"signing key name is unusable: {exc}") from exc


def load_verifier(path: Path) -> NoteVerifier:
    """Load a verifier key file (``name+id+key``)."""
    try:
        text = path.read_text(encoding="utf-8")[:MAX_KEY_FILE]
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"public key {path} cannot be read: {exc}") from exc
    try:
        return NoteVerifier.parse(text)
    except InvalidInput as exc:
        raise KeyFileError(f"public key {path} is corrupted: {exc}") from exc
