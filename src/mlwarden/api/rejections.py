"""Recording rejections: fitted to the ledger's limits, and unauthenticated ones summed per window.

An authenticated caller's rejection is one ``request.rejected`` entry. A rejection of an
unauthenticated request (bad or missing token, body over the limit before authentication,
malformed JSON, an address over its budget) only increments counters here; one
``request.rejected_summary`` entry per window (every ``seconds``, or sooner after ``events``
rejections, and at shutdown) records the counts by reason, status, source address, path
and claimed principal. A flood therefore costs a handful of durable writes, not one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from starlette import types as asgi
from starlette.requests import Request

from mlwarden.api.limits import source_of
from mlwarden.errors import MlwardenError
from mlwarden.identity.ratelimit import TokenBuckets

if TYPE_CHECKING:
    from mlwarden.api.gateway import Gateway

log = structlog.get_logger("mlwarden.api")

SUMMARY_KIND = "request.rejected_summary"
MAX_SCREENED = 4000
"""Characters of a refusal reason kept (and screened for identifiers) before it is recorded."""
SUMMARY_SUBJECT = "requests:unauthenticated"
_KEY_CHARS = 200
_MAX_KEYS = 10_000

Record = Callable[[dict[str, Any]], Awaitable[object]]
"""Durably records one summary body (raises :class:`MlwardenError` when the ledger is down)."""


def masked(reason: str) -> str:
    """``reason`` with identifiers replaced by their kind (the identifier library loads on first use)."""
    from mlwarden.privacy.identifiers import mask

    return mask(reason[:MAX_SCREENED])


def fit(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters; a cut one ends with the length and a hash of the whole."""
    if len(text) <= limit:
        return text
    tail = f"…[{len(text)} chars, sha256:{hashlib.sha256(text.encode('utf-8', 'replace')).hexdigest()[:16]}]"
    return text[: max(0, limit - len(tail))] + tail


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Window:
    start: str = field(default_factory=_now)
    count: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)
    claimed: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str, status: int, source: str, path: str, claimed: str) -> None:
        self.count += 1
        self.statuses[str(status)] += 1
        for counter, key in ((self.reasons, reason), (self.sources, source), (self.paths, path),
                             (self.claimed, claimed)):  # fmt: skip
            key = fit(key, _KEY_CHARS)
            counter[key if key in counter or len(counter) < _MAX_KEYS else "(other)"] += 1

    def body(self, top: int) -> dict[str, Any]:
        return {
            "window": {"start": self.start, "end": _now()},
            "count": self.count,
            "reasons": _top(self.reasons, top),
            "statuses": dict(sorted(self.statuses.items())),
            "sources": _top(self.sources, top),
            "distinct_sources": len(self.sources),
            "paths": _top(self.paths, top),
            "distinct_paths": len(self.paths),
            "claimed_principals": _top(self.claimed, top),
        }


def _top(counter: Counter[str], top: int) -> dict[str, int]:
    """The ``top`` largest counts, the rest summed under ``(other)``: the values add up to the total."""
    kept = dict(counter.most_common(top))
    rest = sum(counter.values()) - sum(kept.values())
    if rest:
        kept["(other)"] = kept.get("(other)", 0) + rest
    return kept


class RejectionSummary:
    """Counts unauthenticated rejections and records them as one entry per window."""

    def __init__(self, *, seconds: float, events: int, top: int) -> None:
        self.seconds = seconds
        self.events = max(1, events)
        self.top = top
        self._lock = threading.Lock()
        self._window = _Window()
        self._wakers: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @property
    def pending(self) -> int:
        """Rejections counted and not yet recorded."""
        return self._window.count

    def add(self, *, reason: str, status: int, source: str, path: str, claimed: str = "anonymous") -> None:
        """Count one rejection (no I/O); wakes the recorder when the window is full."""
        with self._lock:
            self._window.add(reason, status, source, path, claimed)
            full = self._window.count >= self.events
        if full:
            for loop, wake in list(self._wakers):
                with contextlib.suppress(RuntimeError):  # that loop has closed
                    loop.call_soon_threadsafe(wake.set)

    async def flush(self, record: Record) -> None:
        """Record what was counted as one entry; on a ledger outage the counts carry over."""
        with self._lock:
            window, self._window = self._window, _Window()
        if not window.count:
            return
        try:
            await record(window.body(self.top))
        except MlwardenError:
            log.warning("rejection_summary_not_recorded", count=window.count)
            with self._lock:
                self._merge_back(window)

    def _merge_back(self, old: _Window) -> None:
        new = self._window
        old.count += new.count
        for name in ("reasons", "statuses", "sources", "paths", "claimed"):
            getattr(old, name).update(getattr(new, name))
        self._window = old

    async def run(self, record: Record) -> None:
        """Record every ``seconds`` (or when ``events`` are counted) until cancelled."""
        waker = (asyncio.get_running_loop(), asyncio.Event())
        self._wakers.append(waker)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waker[1].wait(), timeout=self.seconds)
                waker[1].clear()
                await self.flush(record)
        finally:
            self._wakers.remove(waker)

    def peek(self) -> dict[str, Any]:
        """The summary body the current window would record now (records nothing)."""
        with self._lock:
            return self._window.body(self.top)


class Rejections:
    """Where the gateway's refusals go: one entry for a known caller, the window summary for anyone else."""

    def __init__(self, *, summary: RejectionSummary, sources: TokenBuckets) -> None:
        self.summary = summary
        self.sources = sources
        self.gateway: Gateway | None = None

    def anonymous(self, scope: asgi.Scope, reason: str, status: int, claimed: str = "anonymous") -> None:
        """Count an unauthenticated rejection and spend from its source address's budget (no I/O)."""
        self.at_door(source_of(scope), reason, status, str(scope.get("path", "")), claimed)

    def at_door(self, source: str, reason: str, status: int, path: str, claimed: str) -> None:
        """Count a refusal that has no ASGI scope (a failed TLS handshake) and spend from its source's budget."""
        self.sources.spend(source)
        self.summary.add(reason=reason, status=status, source=source, path=path, claimed=claimed)

    async def of_request(self, request: Request, reason: str, status: int) -> None:
        """Record a refusal of ``request`` once: individually if its caller authenticated, else summed.

        The reason may quote an input value (a validation error): identifiers in it (e-mail, phone,
        card, IBAN, national id) are masked before it reaches the ledger or a summary.
        """
        state = request.state
        if getattr(state, "rejection_recorded", False):
            return
        state.rejection_recorded = True
        reason = masked(reason)
        principal: str | None = getattr(state, "principal_id", None)
        if principal is None:
            self.anonymous(request.scope, reason, status)
        elif self.gateway is not None:
            resource = getattr(state, "resource", None) or request.url.path
            await self.gateway.reject_async(principal, resource, reason, status)

    async def record_summary(self, body: dict[str, Any]) -> None:
        """Durably record one window's summary (the flusher's ``record``)."""
        if self.gateway is not None:
            await self.gateway.record(kind=SUMMARY_KIND, subject=SUMMARY_SUBJECT, body=body,
                                      principal="system:gateway")  # fmt: skip
