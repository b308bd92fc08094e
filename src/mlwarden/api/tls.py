"""mTLS for uvicorn: put the verified client certificate's SPIFFE ID into the ASGI scope.

uvicorn 0.54 does not expose the peer certificate to applications, so the HTTP protocol
is subclassed: per connection, the verified certificate (the TLS handshake already
checked it against ``--client-ca``) is read once and its SPIFFE URI SAN is added to every
request's ``scope["extensions"]["mlwarden.spiffe_id"]``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from mlwarden.identity.certs import spiffe_id_of


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
