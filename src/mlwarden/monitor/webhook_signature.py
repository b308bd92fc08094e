"""The webhook signature scheme: HMAC-SHA256 over ``<timestamp>.<body>``, and its verifier for receivers.

Headers on every delivery::

    X-Mlwarden-Timestamp: 1764193200
    X-Mlwarden-Signature: v1=<hex HMAC-SHA256(secret, b"1764193200." + body)>
    Idempotency-Key: alrt_…/<sink>

A receiver calls :func:`verify_webhook` with the raw body bytes (before any JSON parsing),
the headers and the shared secret; it raises :class:`SignatureInvalid` or returns ``None``.
The timestamp is inside the MAC, so an old delivery cannot be replayed with a fresh time;
the tolerance window bounds how long a captured delivery stays replayable, and the
idempotency key lets the receiver drop a replay inside that window. Apart from the error
class it uses only the standard library, so a receiver can copy it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from mlwarden.errors import VerificationError

TIMESTAMP_HEADER = "X-Mlwarden-Timestamp"
SIGNATURE_HEADER = "X-Mlwarden-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300.0
MIN_SECRET_BYTES = 16


class SignatureInvalid(VerificationError):
    """A webhook delivery whose signature, timestamp or headers do not verify."""


def _mac(secret: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def sign_webhook(secret: bytes, body: bytes, timestamp: int) -> dict[str, str]:
    """The timestamp and signature headers for ``body`` sent at ``timestamp`` (Unix seconds)."""
    stamp = str(int(timestamp))
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: f"{SCHEME}={_mac(secret, stamp, body)}"}


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    raise SignatureInvalid(f"webhook delivery has no {name} header")


def verify_webhook(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Check a delivery's signature over its exact ``body`` bytes; raise :class:`SignatureInvalid` if it fails.

    Several ``v1=`` signatures may be given, comma-separated (during a secret rotation the
    sender may sign with both); one match is enough. Comparison is in constant time.
    """
    stamp = _header(headers, TIMESTAMP_HEADER).strip()
    if not stamp.isdigit() or len(stamp) > 12:
        raise SignatureInvalid(f"webhook timestamp is not Unix seconds: {stamp[:20]!r}")
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > tolerance_seconds:
        raise SignatureInvalid(
            f"webhook timestamp is {abs(current - int(stamp)):.0f}s away from now (tolerance {tolerance_seconds:g}s)"
        )
    expected = _mac(secret, stamp, body)
    offered = [part.strip() for part in _header(headers, SIGNATURE_HEADER).split(",")]
    found = False
    for part in offered:
        scheme, _, value = part.partition("=")
        if scheme == SCHEME and hmac.compare_digest(value.encode(), expected.encode()):
            found = True  # no early exit: the time taken does not say which signature matched
    if not found:
        raise SignatureInvalid("webhook signature does not match the body and timestamp")
