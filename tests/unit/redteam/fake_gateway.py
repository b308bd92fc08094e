"""A scripted HTTP client for :class:`mlwarden.redteam.target.Target` (its ``HttpClient`` protocol), no network.

The gateway's real rate limit and refusals are exercised against a live server in
tests/integration/test_redteam_attacks.py; this fake answers what a live server cannot be
made to answer on demand (a ``Retry-After: 0``, an alerts API that is not on this branch).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeResponse:
    """What ``Target.request`` reads of an httpx response."""

    status_code: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def content(self) -> bytes:
        return json.dumps(self.body).encode() if self.body is not None else b""


Route = Callable[[str, str, Mapping[str, str], bytes | None], FakeResponse]


class ScriptedClient:
    """Answers each request with ``route(method, url, headers, body)``; records what was sent."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.sent: list[tuple[str, str]] = []

    def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = False,
        extensions: Mapping[str, Any] | None = None,
    ) -> FakeResponse:
        self.sent.append((method, url))
        return self.route(method, url, headers or {}, content)

    def close(self) -> None:
        """Nothing to close."""
