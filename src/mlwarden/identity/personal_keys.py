"""A person's own Ed25519 key: created once (private part mode 0600), loaded for signing, printed for the policy."""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from mlwarden.errors import InvalidInput, KeyFileError
from mlwarden.ledger.keys import read_private_key

KEY_PREFIX = "ed25519:"
MAX_KEY_FILE = 16 * 1024
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """Where a new personal key was written and the public key line for ``policy.yaml``."""

    name: str
    private_key: Path
    public_key: Path
    public_text: str

    def policy_line(self, accounts: tuple[str, ...] = ()) -> str:
        """The ``approvers:`` list item to paste into ``policy.yaml``."""
        return f'  - {{name: {self.name}, key: "{self.public_text}", accounts: [{", ".join(accounts)}]}}'


def check_name(name: str) -> str:
    """A person's name as ``policy.yaml`` and ``key:<name>`` principals use it."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidInput(f"approver name {name!r} is not valid: use 1-64 letters, digits, '.', '_', '@' or '-'")
    return name


def public_key_text(key: Ed25519PublicKey) -> str:
    """``ed25519:<base64 of the 32 raw bytes>``."""
    return KEY_PREFIX + base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def parse_public_key(text: object) -> Ed25519PublicKey:
    """The inverse of :func:`public_key_text`; anything else is an input error."""
    if not isinstance(text, str) or not text.startswith(KEY_PREFIX):
        raise InvalidInput(f"public key must be '{KEY_PREFIX}<base64>', got {str(text)[:40]!r}")
    try:
        raw = base64.b64decode(text[len(KEY_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("public key is not valid base64") from exc
    if len(raw) != 32:
        raise InvalidInput(f"public key must be 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise InvalidInput(f"{path} already exists: refusing to overwrite a key") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, mode)


def create_personal_key(name: str, folder: Path) -> CreatedKey:
    """Write ``NAME.key`` (PEM PKCS#8, mode 0600) and ``NAME.pub`` in ``folder``; never overwrite either."""
    check_name(name)
    private_path, public_path = folder / f"{name}.key", folder / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise InvalidInput(f"{path} already exists: refusing to overwrite a key")
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise KeyFileError(f"cannot create {folder}: {exc.strerror}") from exc
    key = Ed25519PrivateKey.generate()
    text = public_key_text(key.public_key())
    _write_new(private_path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()), 0o600)
    _write_new(public_path, (text + "\n").encode("ascii"), 0o644)
    return CreatedKey(name, private_path, public_path, text)


def load_personal_key(path: Path) -> Ed25519PrivateKey:
    """Load a private key for signing; it must be an Ed25519 PEM readable by its owner only."""
    return read_private_key(path, "key", "create one with `mlwarden keys create`")
