"""Console sessions: a random id in the browser, a keyed hash and a sealed credential in the database.

The database is not trusted: a row holds ``HMAC(key, id)`` and the credential (a token, or the
SPIFFE ID of an mTLS sign-in) with its expiry, sealed with AES-GCM under a key derived from the
id itself. Without the cookie nobody can open or forge a row, nor extend its expiry; the
credential is re-checked on every request by the caller, so a revoked or expired token ends
the session. The CSRF token is derived from the id, so it needs no storage.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, insert, select

from mlwarden.store.schema import console_sessions
from mlwarden.workspace import Workspace

SPIFFE_CREDENTIAL = "spiffe:"
"""Prefix of the credential of a session opened with a client certificate (the connection must show it again)."""
_MAX_ID = 128


@dataclass(frozen=True, slots=True)
class Session:
    """An opened session: who signed in with what, until when, and the form token."""

    credential: str
    principal: str
    expires: datetime
    csrf: str


def console_key(ws: Workspace) -> bytes:
    """The workspace key for sessions, derived from the ledger signing key (never stored)."""
    key = ws.services.get("console_key")
    if not isinstance(key, bytes):
        raw = ws.signer.private_key.private_bytes_raw()
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"mlwarden console sessions v1").derive(raw)
        ws.services["console_key"] = key
    return key


def _mac(key: bytes, label: str, session_id: str) -> str:
    return hmac.new(key, f"{label}:{session_id}".encode(), hashlib.sha256).hexdigest()


def _seal_key(key: bytes, session_id: str) -> bytes:
    return hmac.new(key, f"seal:{session_id}".encode(), hashlib.sha256).digest()


def csrf_token(ws: Workspace, session_id: str) -> str:
    """The form token of a session (HMAC of its id): forms carry it, every POST must show it."""
    return _mac(console_key(ws), "csrf", session_id)


def create_session(ws: Workspace, credential: str, principal: str, lifetime: timedelta) -> tuple[str, Session]:
    """Start a session; returns the id for the cookie (only its keyed hash is stored) and the session."""
    key = console_key(ws)
    session_id = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    expires = now + lifetime
    id_hash = _mac(key, "id", session_id)
    plain = json.dumps({"credential": credential, "principal": principal, "expires": expires.isoformat()}).encode()
    nonce = secrets.token_bytes(12)
    sealed = nonce + AESGCM(_seal_key(key, session_id)).encrypt(nonce, plain, id_hash.encode())
    with ws.engine.begin() as conn:
        conn.execute(delete(console_sessions).where(console_sessions.c.expires < now.isoformat()))
        conn.execute(
            insert(console_sessions).values(
                id_hash=id_hash, principal=principal[:512], created=now.isoformat(), expires=expires.isoformat(),
                sealed=sealed,
            )
        )  # fmt: skip
    return session_id, Session(credential, principal, expires, csrf_token(ws, session_id))


def open_session(ws: Workspace, session_id: str) -> Session | None:
    """The live session for a cookie's id, or None (unknown, tampered with, or expired)."""
    if not session_id or len(session_id) > _MAX_ID:
        return None
    key = console_key(ws)
    id_hash = _mac(key, "id", session_id)
    with ws.engine.connect() as conn:
        row = conn.execute(
            select(console_sessions.c.id_hash, console_sessions.c.sealed).where(console_sessions.c.id_hash == id_hash)
        ).first()
    if row is None or not hmac.compare_digest(str(row.id_hash), id_hash):
        return None
    sealed = bytes(row.sealed)
    try:
        plain = AESGCM(_seal_key(key, session_id)).decrypt(sealed[:12], sealed[12:], id_hash.encode())
        data = json.loads(plain)
        expires = datetime.fromisoformat(data["expires"])
        credential, principal = str(data["credential"]), str(data["principal"])
    except (InvalidTag, ValueError, KeyError, TypeError):
        return None
    if expires <= datetime.now(UTC):
        end_session(ws, session_id)
        return None
    return Session(credential, principal, expires, csrf_token(ws, session_id))


def end_session(ws: Workspace, session_id: str) -> None:
    """Forget a session (sign-out, or its credential no longer holds)."""
    if not session_id or len(session_id) > _MAX_ID:
        return
    with ws.engine.begin() as conn:
        conn.execute(
            delete(console_sessions).where(console_sessions.c.id_hash == _mac(console_key(ws), "id", session_id))
        )
