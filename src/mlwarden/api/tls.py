"""mTLS for uvicorn: SPIFFE IDs into the ASGI scope, and refused client certificates counted.

uvicorn 0.54 does not expose the peer certificate to applications, so the HTTP protocol
is subclassed: per connection, the verified certificate (the TLS handshake already
checked it against ``--client-ca``) is read once and its SPIFFE URI SAN is added to every
request's ``scope["extensions"]["mlwarden.spiffe_id"]``.

With ``--client-ca``, TLS is not left to ``loop.create_server(ssl=...)``: there a failed
handshake (a certificate from another CA, an expired one, none at all) ends inside the
event loop and the application never hears of it. Instead uvicorn gets a plain listener
and :class:`RecordingTLSProtocol` as its HTTP protocol: asyncio's own TLS protocol
(``asyncio.sslproto.SSLProtocol``, the same one ``create_server`` uses) wrapped around
:class:`SpiffeH11Protocol`, which on a failed handshake counts one unauthenticated
rejection, from the peer's address, in the worker's per-window summary
(:class:`mlwarden.api.rejections.Rejections`): no I/O per handshake, one ledger entry
per window. It relies on one private hook, ``SSLProtocol._on_handshake_complete``
(Python 3.11 to 3.13); :func:`check_supported` refuses to start without it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import ssl
import sys
from asyncio import sslproto
from dataclasses import dataclass
from typing import Any

import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

from mlwarden.api.rejections import Rejections
from mlwarden.errors import ConfigError
from mlwarden.identity.certs import spiffe_id_of

log = structlog.get_logger("mlwarden.api")

UNVERIFIED = "tls:unverified"
"""The claimed principal of a refused handshake: nothing about the caller was verified."""
HANDSHAKE_PATH = "(tls handshake)"
"""The path a refused handshake is counted under: no HTTP request was read."""
_NO_CERTIFICATE = "PEER_DID_NOT_RETURN_A_CERTIFICATE"


class SpiffeH11Protocol(H11Protocol):
    """h11 protocol that tags requests with the client's SPIFFE ID."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        spiffe = spiffe_id_of(der) if der else None
        inner = self.app

        async def tagged(scope: Any, receive: Any, send: Any) -> None:
            extensions = dict(scope.get("extensions") or {})
            extensions.pop("mlwarden.spiffe_id", None)
            if spiffe:
                extensions["mlwarden.spiffe_id"] = spiffe
            scope["extensions"] = extensions
            await inner(scope, receive, send)

        self.app = tagged


@dataclass(frozen=True)
class MutualTLS:
    """The server's certificate and key and the CA its clients' certificates must chain to (PEM paths)."""

    cert: str
    key: str
    client_ca: str

    def context(self) -> ssl.SSLContext:
        """The server context (built once per process): TLS 1.2 or later, a client certificate required."""
        return _context(self)


@functools.cache
def _context(tls: MutualTLS) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert, tls.key)
    context.load_verify_locations(cafile=tls.client_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def refusal(exc: BaseException) -> tuple[str, int] | None:
    """The reason and status a failed handshake is counted with; ``None`` when it is not a TLS failure.

    A certificate that does not verify or a missing one is a failed authentication (401); any
    other TLS error (plain HTTP to the TLS port, no common protocol version) is a bad request (400).
    A connection dropped or timed out during the handshake is not counted.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"client certificate refused: CERTIFICATE_VERIFY_FAILED ({exc.verify_message})", 401
    if not isinstance(exc, ssl.SSLError):
        return None
    code = str(exc.reason or type(exc).__name__)
    if code == _NO_CERTIFICATE:
        return "no client certificate", 401
    return f"tls handshake failed: {code}", 400


def rejections_of(app: object) -> Rejections | None:
    """The application's rejection counter, found through uvicorn's middleware wrappers (``.app``)."""
    for _ in range(16):
        found = getattr(getattr(app, "state", None), "rejections", None)
        if isinstance(found, Rejections):
            return found
        app = getattr(app, "app", None)
        if app is None:
            break
    return None


class RecordingTLSProtocol(sslproto.SSLProtocol):
    """uvicorn's HTTP protocol under ``--client-ca``: TLS server side, then :class:`SpiffeH11Protocol`.

    Built by uvicorn per connection (``config``, ``server_state``, ``app_state``) with ``tls``
    bound by :func:`recording_protocol`.
    """

    def __init__(
        self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: asyncio.AbstractEventLoop | None = None,
        *, tls: MutualTLS,
    ) -> None:  # fmt: skip
        loop = _loop or asyncio.get_event_loop()
        inner = SpiffeH11Protocol(config=config, server_state=server_state, app_state=app_state, _loop=loop)
        super().__init__(loop, inner, tls.context(), None, server_side=True)  # type: ignore[arg-type]  # no waiter
        self._rejections = rejections_of(config.loaded_app)
        self._source = "unknown"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self._source = str(peer[0])
        super().connection_made(transport)

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None:
            self._count(handshake_exc)
        super()._on_handshake_complete(handshake_exc)

    def _count(self, exc: BaseException) -> None:
        refused = refusal(exc)
        if refused is None:
            return
        reason, status = refused
        if self._rejections is None:  # not our app: say so rather than lose it silently
            log.warning("tls_refusal_not_counted", source=self._source, reason=reason, status=status)
            return
        self._rejections.at_door(self._source, reason, status, HANDSHAKE_PATH, UNVERIFIED)


def recording_protocol(tls: MutualTLS) -> functools.partial[RecordingTLSProtocol]:
    """The ``http`` protocol to give uvicorn (with no ssl settings): picklable, so ``--workers N`` works."""
    return functools.partial(RecordingTLSProtocol, tls=tls)


def check_supported() -> None:
    """Refuse to serve mTLS when this Python's asyncio lacks the hook refusals are counted through."""
    hook = getattr(sslproto.SSLProtocol, "_on_handshake_complete", None)
    try:
        parameters = inspect.signature(sslproto.SSLProtocol.__init__).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    if hook is None or "server_side" not in parameters:
        version = ".".join(map(str, sys.version_info[:3]))
        raise ConfigError(
            f"--client-ca: refused client certificates cannot be counted on Python {version} "
            "(asyncio.sslproto.SSLProtocol._on_handshake_complete is missing); use Python 3.11 to 3.13"
        )
