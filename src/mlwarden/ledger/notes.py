"""Signed checkpoints: the C2SP tlog-checkpoint body inside a C2SP signed note (Ed25519).

A checkpoint note reads::

    mlwarden.local/1f2e3d4c5b6a
    1234
    <base64 root hash>

    — mlwarden.local/1f2e3d4c5b6a <base64(key id || ed25519 signature)>

The key id is the first four bytes of SHA-256(name || "\\n" || 0x01 || public key), and a
verifier key is written ``name+<hex key id>+<base64(0x01 || public key)>``. A key's
*fingerprint*, what an auditor pins, is the lowercase hex SHA-256 of the 32 raw Ed25519
public key bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mlwarden.errors import InvalidInput, KeyMismatch, VerificationError
from mlwarden.ledger.ranges import HASH_SIZE

ED25519_ALG = 0x01
_SIG_PREFIX = "\u2014 "
_NAME = re.compile(r"^[^\s+]+$")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
MAX_NOTE_BYTES = 64 * 1024


def _key_id(name: str, public_raw: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519_ALG]) + public_raw).digest()[:4]


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidInput(f"note key name {name!r} must be non-empty with no spaces or '+'")


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """An Ed25519 note verifier key with its name."""

    name: str
    public_key: Ed25519PublicKey

    @property
    def public_raw(self) -> bytes:
        """The 32 raw public key bytes."""
        return self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id that prefixes every signature."""
        return _key_id(self.name, self.public_raw)

    @property
    def fingerprint(self) -> str:
        """The key's fingerprint: lowercase hex SHA-256 of the raw public key (what an auditor pins)."""
        return hashlib.sha256(self.public_raw).hexdigest()

    def vkey(self) -> str:
        """The verifier key string ``name+hexid+base64(0x01||key)``."""
        blob = base64.b64encode(bytes([ED25519_ALG]) + self.public_raw).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    @classmethod
    def parse(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key string; raise :class:`InvalidInput` when malformed."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise InvalidInput("verifier key must read name+keyid+key")
        name, hex_id, blob = parts
        _check_name(name)
        try:
            raw = base64.b64decode(blob, validate=True)
            key_id = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"verifier key is not valid base64/hex: {exc}") from exc
        if len(raw) != 33 or raw[0] != ED25519_ALG:
            raise InvalidInput("verifier key is not an ed25519 key")
        verifier = cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]))
        if verifier.key_id != key_id:
            raise InvalidInput("verifier key id does not match its name and key")
        return verifier


@dataclass(frozen=True, slots=True)
class NoteSigner:
    """An Ed25519 note signing key with its name (the log's origin)."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        _check_name(self.name)

    def verifier(self) -> NoteVerifier:
        """The matching verifier."""
        return NoteVerifier(self.name, self.private_key.public_key())

    def sign(self, text: str) -> str:
        """Return ``text`` as a signed note (``text`` must end with a newline)."""
        _check_text(text)
        sig = self.private_key.sign(text.encode())
        blob = base64.b64encode(self.verifier().key_id + sig).decode()
        return f"{text}\n{_SIG_PREFIX}{self.name} {blob}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise InvalidInput("note text must end with a newline")
    if _CONTROL.search(text):
        raise InvalidInput("note text contains control characters")


def open_note(note: str, verifier: NoteVerifier) -> str:
    """Verify a signed note with ``verifier`` and return its text.

    Raises :class:`VerificationError` when no signature by that key is present and valid
    (:class:`KeyMismatch` when the note is signed only by other keys, or not at all).
    """
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise VerificationError(f"note is larger than {MAX_NOTE_BYTES} bytes")
    split = note.rfind("\n\n")
    if split < 0:
        raise VerificationError("note has no signature block")
    text, sig_block = note[: split + 1], note[split + 2 :]
    if not sig_block.endswith("\n"):
        raise VerificationError("note signature block must end with a newline")
    found_key = False
    others: list[str] = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(_SIG_PREFIX):
            raise VerificationError(f"malformed signature line: {line[:60]!r}")
        try:
            name, blob = line[len(_SIG_PREFIX) :].split(" ")
            raw = base64.b64decode(blob, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise VerificationError(f"malformed signature line: {line[:60]!r}") from exc
        if name != verifier.name or raw[:4] != verifier.key_id:
            others.append(f"{name[:64]!r} (key id {raw[:4].hex()})")
            continue
        found_key = True
        try:
            verifier.public_key.verify(raw[4:], text.encode())
        except InvalidSignature:
            continue
        return text
    if found_key:
        raise VerificationError(f"bad signature: note signature by {verifier.name} does not verify")
    signed_by = f"; it is signed by {', '.join(others[:3])}" if others else ""
    raise KeyMismatch(
        f"key mismatch: note carries no signature by key {verifier.name} (key id {verifier.key_id.hex()}){signed_by}"
    )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's state: origin, tree size and root hash (C2SP tlog-checkpoint)."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        """The unsigned checkpoint body."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    def sign(self, signer: NoteSigner) -> str:
        """The checkpoint as a signed note."""
        return signer.sign(self.text())

    @classmethod
    def parse_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body (extension lines are allowed and ignored)."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise VerificationError("checkpoint must have origin, size and root lines")
        origin, size_s, root_b64 = lines[0], lines[1], lines[2]
        if not origin or not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
            raise VerificationError("checkpoint origin or size line is malformed")
        try:
            root = base64.b64decode(root_b64, validate=True)
        except binascii.Error as exc:
            raise VerificationError("checkpoint root is not base64") from exc
        if len(root) != HASH_SIZE:
            raise VerificationError(f"checkpoint root must be {HASH_SIZE} bytes, got {len(root)}")
        return cls(origin, int(size_s), root)

    @classmethod
    def open(cls, note: str, verifier: NoteVerifier) -> Checkpoint:
        """Verify a signed checkpoint note and parse it; the origin must be the key's name."""
        checkpoint = cls.parse_text(open_note(note, verifier))
        if checkpoint.origin != verifier.name:
            raise VerificationError(f"checkpoint origin {checkpoint.origin!r} is not this log's {verifier.name!r}")
        return checkpoint
