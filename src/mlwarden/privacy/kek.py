"""The key-encryption key (KEK) that wraps every data key, and the hook for an external KMS.

The workspace KEK is 32 random bytes in ``keys/privacy.kek`` (mode 0600, beside the ledger's
signing key), written as one line ``mlwarden-kek-v1 <base64url>``. Two independent keys are
derived from it with HKDF-SHA256: one wraps data keys (AES-256-GCM), the other turns subject
ids into table keys (HMAC-SHA256), so the database alone never lists subjects.

An external KMS plugs in by implementing :class:`KeyEncryptionKey`: ``wrap``/``unwrap`` map to
the KMS's encrypt/decrypt with ``context`` as its associated data / encryption context, and
``subject_tag`` to its MAC operation (e.g. AWS KMS ``GenerateMac``, Cloud KMS ``MacSign``) or a
MAC key the KMS releases to the process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mlwarden.errors import KeyFileError
from mlwarden.privacy.errors import KeyUnwrapFailed

KEK_BYTES = 32
NONCE_BYTES = 12
MAGIC = "mlwarden-kek-v1"
MAX_KEK_FILE = 1024
HMAC_BLOCK = 64
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


@runtime_checkable
class KeyEncryptionKey(Protocol):
    """What wraps data keys. Implement it to keep the KEK in a KMS or HSM instead of a file."""

    @property
    def kek_id(self) -> str:
        """A short public name of this KEK, stored beside every key it wraps (never secret)."""
        ...

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        """Encrypt ``data_key``, authenticating ``context``; a fresh nonce every call."""
        ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """The data key, or :class:`KeyUnwrapFailed` when ``wrapped`` or ``context`` is not what was wrapped."""
        ...

    def subject_tag(self, name: bytes) -> bytes:
        """A keyed, deterministic 32-byte pseudonym of ``name`` (HMAC-SHA256 or the KMS's MAC)."""
        ...


def _derive(kek: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=b"mlwarden-privacy-v1\x00" + purpose).derive(kek)


def hmac_states(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """HMAC-SHA256's (RFC 2104) inner and outer hash states after the padded ``key`` (one block at most).

    Copying them per tag (or per derived key) is HMAC exactly, at a third of ``hmac.digest``'s cost (no key set-up).
    """
    if len(key) > HMAC_BLOCK:
        raise KeyFileError(f"HMAC key must be at most {HMAC_BLOCK} bytes")
    padded = key.ljust(HMAC_BLOCK, b"\x00")
    return hashlib.sha256(padded.translate(_IPAD)), hashlib.sha256(padded.translate(_OPAD))


class LocalKek:
    """The workspace KEK from its file: AES-256-GCM wrapping and HMAC-SHA256 subject tags."""

    __slots__ = ("_kek_id", "_tag_inner", "_tag_outer", "_wrapper")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEK_BYTES:
            raise KeyFileError(f"key-encryption key must be {KEK_BYTES} bytes, got {len(secret)}")
        self._wrapper = AESGCM(_derive(secret, b"wrap"))
        self._tag_inner, self._tag_outer = hmac_states(_derive(secret, b"subject-tag"))
        self._kek_id = hashlib.sha256(b"mlwarden-kek-id-v1\x00" + secret).hexdigest()[:16]

    @classmethod
    def load(cls, path: Path) -> LocalKek:
        """Read ``keys/privacy.kek``; :class:`KeyFileError` naming what is wrong with the file."""
        return cls(read_kek(path))

    @property
    def kek_id(self) -> str:
        """First 8 bytes of a domain-separated SHA-256 of the KEK, in hex."""
        return self._kek_id

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        """``nonce || AES-256-GCM(data_key)`` with ``context`` as associated data."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._wrapper.encrypt(nonce, data_key, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """The data key wrapped with this exact ``context``; :class:`KeyUnwrapFailed` otherwise."""
        if len(wrapped) <= NONCE_BYTES:
            raise KeyUnwrapFailed("wrapped data key is truncated")
        try:
            return self._wrapper.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context)
        except InvalidTag as exc:
            raise KeyUnwrapFailed("wrapped data key does not unwrap under the workspace key") from exc

    def subject_tag(self, name: bytes) -> bytes:
        """HMAC-SHA256 of ``name`` under the KEK-derived tag key (from the key's precomputed pad states)."""
        inner = self._tag_inner.copy()
        inner.update(name)
        outer = self._tag_outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def write_kek(path: Path) -> None:
    """Create a new KEK file at ``path`` (mode 0600); never overwrite an existing one."""
    text = f"{MAGIC} {base64.urlsafe_b64encode(os.urandom(KEK_BYTES)).decode('ascii')}\n"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # fails if a KEK appeared meanwhile: never replace one
    finally:
        tmp.unlink()


def read_kek(path: Path) -> bytes:
    """The 32 KEK bytes from a file readable by its owner only; :class:`KeyFileError` otherwise."""
    what = f"key-encryption key {path}"
    try:
        st = path.stat()
        if st.st_size > MAX_KEK_FILE:
            raise KeyFileError(f"{what} is {st.st_size} bytes, too large to be a key")
        text = path.read_bytes().decode("ascii")
    except FileNotFoundError as exc:
        raise KeyFileError(f"{what} is missing (run `mlwarden init`, or copy it from a backup)") from exc
    except OSError as exc:
        raise KeyFileError(f"{what} cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise KeyFileError(f"{what} is corrupted: not a {MAGIC} key file") from exc
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise KeyFileError(f"{what} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}); run chmod 600")
    magic, _, encoded = text.strip().partition(" ")
    try:
        secret = base64.urlsafe_b64decode(encoded.encode("ascii"))
    except (binascii.Error, ValueError) as exc:
        raise KeyFileError(f"{what} is corrupted: not a {MAGIC} key file") from exc
    if magic != MAGIC or len(secret) != KEK_BYTES:
        raise KeyFileError(f"{what} is corrupted: not a {MAGIC} key file")
    return secret
