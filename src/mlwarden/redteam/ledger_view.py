"""Where a suite looks for the ledger entries its probes should have caused.

Over HTTP, through the audit API (``GET /v1/audit/entries``, scope ``audit:read``); in ``--home``
mode, the workspace's own ledger. ``None`` from either means "cannot be checked from here"
(no audit token, or a gateway without the audit route), which a suite reports as not checked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from mlwarden.redteam.target import Target

MAX_PAGES = 50
"""Pages of audit entries read per question (a bound, not an expectation)."""


class LedgerView(Protocol):
    """Entries at or after an index, as ``{"index","kind","time","principal","subject","body"}`` dicts."""

    def size(self) -> int | None: ...

    def entries(self, since_index: int) -> list[dict[str, Any]] | None: ...


class AuditApiView:
    """The ledger as the audit API shows it to an ``audit:read`` token."""

    def __init__(self, target: Target, token: str) -> None:
        self.target = target
        self._token = token

    def _page(self, since: int) -> dict[str, Any] | None:
        reply = self.target.request("GET", f"/v1/audit/entries?since_index={since}", token=self._token)
        doc = reply.json()
        if reply.status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
            return None
        return doc

    def size(self) -> int | None:
        """The ledger size from the signed checkpoint (``GET /v1/ledger/checkpoint``)."""
        if self._page(0) is None:
            return None  # no audit route here: nothing can be checked
        reply = self.target.request("GET", "/v1/ledger/checkpoint", token=self._token)
        doc = reply.json()
        return int(doc["size"]) if reply.status == 200 and isinstance(doc, dict) and "size" in doc else None

    def entries(self, since_index: int) -> list[dict[str, Any]] | None:
        out: list[dict[str, Any]] = []
        since = since_index
        for _ in range(MAX_PAGES):
            doc = self._page(since)
            if doc is None:
                return out or None
            out.extend(e for e in doc["entries"] if isinstance(e, dict))
            following = doc.get("next_since_index")
            if not doc["entries"] or not isinstance(following, int) or following <= since:
                break
            since = following
        return out


class LocalLedgerView:
    """The ledger of the workspace a ``--home`` run started its gateway on (read-only)."""

    def __init__(self, size: Callable[[], int], rows: Callable[[int], list[dict[str, Any]]]) -> None:
        self._size = size
        self._rows = rows

    def size(self) -> int | None:
        return self._size()

    def entries(self, since_index: int) -> list[dict[str, Any]] | None:
        return self._rows(since_index)
