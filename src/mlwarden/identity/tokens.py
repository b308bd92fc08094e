"""API tokens ``mlw_<id>_<secret>``: 256-bit secrets, stored only as a hash, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import insert, select, update

from mlwarden.errors import InvalidInput, NotFound
from mlwarden.identity.scopes import Scope, effective_grant, parse_grant, parse_scopes
from mlwarden.ledger.entry import utc_now
from mlwarden.ledger.notes import NoteSigner
from mlwarden.store.schema import tokens
from mlwarden.trust.follower import follower
from mlwarden.trust.projection import TokenFacts
from mlwarden.workspace import Workspace

PREFIX = "mlw"
_ID = re.compile(r"^[0-9a-f]{16}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{43}$")
_DURATION = re.compile(r"([0-9]{1,6})([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_DURATION = timedelta(days=3650)
"""The longest token lifetime accepted; longer is an input error (and ``999999w`` would overflow a date)."""


class MalformedToken(InvalidInput):
    """A bearer value that is not an mlwarden token."""


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """The two parts of ``mlw_<id>_<secret>``."""

    token_id: str
    secret: str


def parse_token(value: str) -> ParsedToken:
    """Split a token; anything not exactly ``mlw_<16 hex>_<43 base64url>`` is malformed."""
    if not isinstance(value, str) or len(value) != len(PREFIX) + 1 + 16 + 1 + 43:
        raise MalformedToken("token is malformed")
    prefix, _, rest = value.partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix != PREFIX or not _ID.fullmatch(token_id) or not _SECRET.fullmatch(secret):
        raise MalformedToken("token is malformed")
    return ParsedToken(token_id, secret)


def secret_key(signer: NoteSigner) -> bytes:
    """The workspace key that hashes token secrets, derived from the signing key (never stored)."""
    raw = signer.private_key.private_bytes_raw()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"mlwarden token secrets v1").derive(raw)


def hash_secret(key: bytes, token_id: str, secret: str) -> str:
    """HMAC-SHA256 of ``id:secret`` under the workspace key.

    Keyed, so someone who can write the database cannot plant a hash of a secret they
    chose; bound to the id, so a known secret's hash copied to another token's row fails.
    """
    return hmac.new(key, f"{token_id}:{secret}".encode(), hashlib.sha256).hexdigest()


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s``; at most :data:`MAX_DURATION` (ten years)."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match or int(match[1]) == 0:
        raise InvalidInput(f"duration {str(text)[:40]!r} must look like 30d, 12h, 90m, 2w or 45s")
    duration = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if duration > MAX_DURATION:
        raise InvalidInput(
            f"duration {text.strip()!r} is longer than the limit of {MAX_DURATION.days} days (ten years)"
        )
    return duration


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token, without its secret."""

    token_id: str
    name: str
    scopes: tuple[Scope, ...]
    models: tuple[str, ...] | None
    created: str
    expires: str | None
    revoked: str | None
    created_by: str
    grant: tuple[Scope, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.token_id, "name": self.name, "scopes": [s.value for s in self.scopes],
            "models": list(self.models) if self.models is not None else None, "created": self.created,
            "expires": self.expires, "revoked": self.revoked, "created_by": self.created_by,
            "grant": [s.value for s in self.grant], "state": self.state(),
        }  # fmt: skip

    def state(self, now: datetime | None = None) -> str:
        if self.revoked:
            return "revoked"
        if self.expires and _parse_time(self.expires) <= (now or datetime.now(UTC)):
            return "expired"
        return "active"


def _parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _record(row: Any) -> TokenRecord:
    """The row as stored (untrusted: compare with the ledger's facts before believing it)."""
    try:
        models = json.loads(row.models)
        scopes = tuple(Scope(s) for s in json.loads(row.scopes))
        limited = tuple(str(m) for m in models) if models is not None else None
        stored = json.loads(row.grant) if row.grant is not None else None  # NULL: a token from before grants
        grant = effective_grant(scopes, tuple(Scope(s) for s in stored) if stored is not None else None)
    except (ValueError, TypeError, InvalidInput) as exc:
        raise _Tampered("scopes, models or grant are not readable") from exc
    return TokenRecord(row.id, row.name, scopes, limited, row.created, row.expires, row.revoked, row.created_by, grant)


def _model_list(models: list[str] | None) -> tuple[str, ...] | None:
    """None (every model) or a non-empty list of names; an empty list never means every model."""
    if models is None:
        return None
    if not models:
        raise InvalidInput("the model list is empty: name at least one model, or omit it for every model")
    for model in models:
        if not isinstance(model, str) or not model or len(model) > 128:
            raise InvalidInput("each model name must be 1-128 characters")
    return tuple(dict.fromkeys(models))


class _Tampered(Exception):
    """A token row that disagrees with the ledger (the message names the columns)."""


def _disagreement(record: TokenRecord, facts: TokenFacts) -> str | None:
    """Which columns of a token row differ from what the ledger recorded, or None."""
    differ = [
        column
        for column, stored, recorded in (
            ("name", record.name, facts.name),
            ("scopes", tuple(s.value for s in record.scopes), facts.scopes),
            ("models", record.models, facts.models),
            ("expires", record.expires, facts.expires),
            ("created_by", record.created_by, facts.created_by),
            ("revoked", record.revoked is not None, facts.revoked_index is not None),
            ("grant", tuple(s.value for s in record.grant), _granted(record.scopes, facts.grant)),
        )
        if stored != recorded
    ]
    return ", ".join(differ) or None


def _granted(scopes: tuple[Scope, ...], recorded: tuple[str, ...] | None) -> tuple[str, ...]:
    """The grant the ledger gave a token (the default when its entry predates grants)."""
    try:
        stored = tuple(Scope(s) for s in recorded) if recorded is not None else None
        return tuple(s.value for s in effective_grant(scopes, stored))
    except (ValueError, InvalidInput):
        return ("unreadable",)


def token_row_problem(row: Any, facts: TokenFacts | None) -> str | None:
    """Why a stored token row cannot be trusted, or None when it agrees with the ledger."""
    if facts is None:
        return "no token.created entry in the ledger backs this row"
    try:
        differ = _disagreement(_record(row), facts)
    except _Tampered as exc:
        return str(exc)
    return None if differ is None else f"{differ} differ from ledger entry {facts.created_index}"


def token_json(record: TokenRecord, problem: str | None) -> dict[str, Any]:
    """How ``token list`` shows a token: a row that disagrees with the ledger is ``tampered``."""
    out = record.to_json()
    if problem is not None:
        out.update(state="tampered", problem=problem)
    return out


def _key(ws: Workspace) -> bytes:
    key = ws.services.get("token_key")
    if not isinstance(key, bytes):
        key = secret_key(ws.signer)
        ws.services["token_key"] = key
    return key


def create_token(
    ws: Workspace,
    *,
    name: str,
    scopes: list[str],
    principal: str,
    models: list[str] | None = None,
    expires: str | None = None,
    expires_at: datetime | None = None,
    grant: list[str] | None = None,
) -> tuple[str, TokenRecord]:
    """Create a token; return the full token (shown once) and its record. Recorded in the ledger.

    ``models`` None means every model; an empty list is refused. ``grant`` lists the scopes an
    ``admin`` token may hand out (None: :data:`~mlwarden.identity.scopes.DEFAULT_GRANT`); it is
    refused without ``admin``.
    Whether the creator may grant all this is the caller's policy decision (see
    :func:`mlwarden.identity.policy.decide_mint`); here, on the workspace's own machine, anything goes.
    """
    if not name or len(name) > 128:
        raise InvalidInput("token name must be 1-128 characters")
    parsed_scopes = parse_scopes(scopes)
    limited = _model_list(models)
    granted = effective_grant(parsed_scopes, parse_grant(grant) if grant is not None else None)
    if expires is not None:
        expires_at = datetime.now(UTC) + parse_duration(expires)
    expiry = expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if expires_at is not None else None
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    record = TokenRecord(token_id, name, parsed_scopes, limited, utc_now(), expiry, None, principal, granted)
    with ws.log.transaction() as tx:
        tx.conn.execute(
            insert(tokens).values(
                id=token_id,
                name=name,
                secret_hash=hash_secret(_key(ws), token_id, secret),
                scopes=json.dumps([s.value for s in parsed_scopes]),
                models=json.dumps(list(limited) if limited is not None else None),
                created=record.created,
                expires=expiry,
                revoked=None,
                created_by=principal,
                grant=json.dumps([s.value for s in granted]),
            )
        )
        tx.append(kind="token.created", subject=f"token:{token_id}", body=record.to_json(), principal=principal)
    return f"{PREFIX}_{token_id}_{secret}", record


def list_tokens(ws: Workspace) -> list[tuple[TokenRecord, str | None]]:
    """Every token, never a secret, each with why its row cannot be trusted (None when it can)."""
    state = follower(ws).refresh()
    with ws.engine.connect() as conn:
        rows = conn.execute(select(tokens).order_by(tokens.c.created)).all()
    out = []
    for row in rows:
        problem = token_row_problem(row, state.tokens.get(row.id))
        try:
            record = _record(row)
        except _Tampered:
            record = TokenRecord(row.id, row.name, (), (), row.created, row.expires, row.revoked, row.created_by)
        out.append((record, problem))
    return out


def revoke_token(ws: Workspace, token_id: str, principal: str) -> TokenRecord:
    """Revoke by id; recorded. Revoking twice is harmless."""
    if not _ID.fullmatch(token_id):
        raise InvalidInput(f"token id {token_id!r} is not 16 hex characters")
    with ws.log.transaction() as tx:
        row = tx.conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"token {token_id} does not exist")
        if row.revoked is None:
            tx.conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked=utc_now()))
            tx.append(kind="token.revoked", subject=f"token:{token_id}", body={"name": row.name}, principal=principal)
        row = tx.conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
    return _record(row)


def authenticate(ws: Workspace, value: str, *, max_age: float = 0.0) -> tuple[TokenRecord | None, str]:
    """Check a presented token. Returns (record, "") when valid, else (record or None, reason).

    The secret is checked against the keyed hash in the row; everything else (scopes,
    models, expiry, revocation) comes from the verified ledger state, and a row that
    disagrees with it is refused. ``max_age`` bounds how stale that state may be.
    """
    try:
        parsed = parse_token(value)
    except MalformedToken:
        return None, "token is malformed"
    with ws.engine.connect() as conn:
        row = conn.execute(select(tokens).where(tokens.c.id == parsed.token_id)).first()
    expected = row.secret_hash if row is not None else "0" * 64  # same work when unknown
    matches = hmac.compare_digest(hash_secret(_key(ws), parsed.token_id, parsed.secret), str(expected))
    if row is None or not matches:
        return None, "token is not valid"
    follow = follower(ws)
    facts = follow.state(max_age).tokens.get(parsed.token_id)
    problem = token_row_problem(row, facts)
    if problem is not None:  # changed since the last refresh (created, revoked), or tampered with
        facts = follow.refresh().tokens.get(parsed.token_id)
        problem = token_row_problem(row, facts)
    if problem is not None or facts is None:
        return None, f"token {parsed.token_id} was changed outside mlwarden ({problem}): refused"
    record = _record(row)
    state = record.state()
    if state != "active":
        return record, f"token is {state}"
    return record, ""
