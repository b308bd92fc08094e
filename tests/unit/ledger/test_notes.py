"""Signed checkpoint notes in the C2SP format: round trip, key ids, and every way to break them."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlwarden.errors import InvalidInput, VerificationError
from mlwarden.ledger.notes import Checkpoint, NoteSigner, NoteVerifier, open_note

ORIGIN = "example.com/log"


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner(ORIGIN, Ed25519PrivateKey.generate())


def test_checkpoint_note_has_the_c2sp_shape(signer: NoteSigner) -> None:
    """Origin, size, base64 root, blank line, then '— name base64(keyid||sig)'."""
    root = hashlib.sha256(b"x").digest()
    note = Checkpoint(ORIGIN, 7, root).sign(signer)
    lines = note.split("\n")
    assert lines[:4] == [ORIGIN, "7", base64.b64encode(root).decode(), ""]
    assert lines[4].startswith(f"\u2014 {ORIGIN} ")
    blob = base64.b64decode(lines[4].split(" ")[2])
    pub = signer.verifier().public_raw
    assert blob[:4] == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + pub).digest()[:4]
    assert len(blob) == 4 + 64
    assert note.endswith("\n")
    assert Checkpoint.open(note, signer.verifier()) == Checkpoint(ORIGIN, 7, root)


def test_vkey_round_trip(signer: NoteSigner) -> None:
    """The verifier key string parses back to the same key and id."""
    vkey = signer.verifier().vkey()
    name, hex_id, _ = vkey.split("+", 2)
    assert name == ORIGIN
    parsed = NoteVerifier.parse(vkey)
    assert parsed.key_id.hex() == hex_id
    assert parsed.public_raw == signer.verifier().public_raw


def test_vkey_with_wrong_id_is_rejected(signer: NoteSigner) -> None:
    """A verifier key whose id does not match its key is refused."""
    name, _, blob = signer.verifier().vkey().split("+", 2)
    with pytest.raises(InvalidInput):
        NoteVerifier.parse(f"{name}+00000000+{blob}")


def test_altered_notes_do_not_verify(signer: NoteSigner) -> None:
    """A changed size, root, origin or signature byte, or another key, is caught."""
    note = Checkpoint(ORIGIN, 10, b"\x01" * 32).sign(signer)
    verifier = signer.verifier()
    tampered = [
        note.replace("\n10\n", "\n11\n"),
        note.replace(base64.b64encode(b"\x01" * 32).decode(), base64.b64encode(b"\x02" * 32).decode()),
    ]
    sig_line = note.split("\n")[4]
    blob = bytearray(base64.b64decode(sig_line.split(" ")[2]))
    blob[10] ^= 1
    tampered.append(note.replace(sig_line.split(" ")[2], base64.b64encode(bytes(blob)).decode()))
    for bad in tampered:
        with pytest.raises(VerificationError):
            Checkpoint.open(bad, verifier)
    other = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(VerificationError):
        Checkpoint.open(Checkpoint(ORIGIN, 10, b"\x01" * 32).sign(other), verifier)
    with pytest.raises(VerificationError):
        open_note("no signature here\n", verifier)


def test_origin_must_match_the_key_name(signer: NoteSigner) -> None:
    """A checkpoint for another origin, even signed by this key, is refused."""
    note = signer.sign("other.example/log\n1\n" + base64.b64encode(b"\0" * 32).decode() + "\n")
    with pytest.raises(VerificationError, match="origin"):
        Checkpoint.open(note, signer.verifier())
