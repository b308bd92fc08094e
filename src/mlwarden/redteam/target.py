"""The gateway under attack: one base URL, the tokens the run was given, a query budget.

Every request goes to ``base_url`` and nowhere else (no redirects followed, paths only), with
timeouts. Tokens never appear in a repr, a log line or a report. ``httpx`` comes with the
``redteam`` extra and is imported when a target is opened.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, Protocol
from urllib.parse import urlsplit

from mlwarden.errors import InvalidInput, MlwardenError
from mlwarden.extras import require_extra


class TargetUnreachable(MlwardenError):
    """The gateway did not answer (connection refused, timeout, TLS failure)."""

    exit_code = 2


class BudgetExhausted(MlwardenError):
    """A suite asked for more model queries than the run's budget has left."""


class PredictRefused(MlwardenError):
    """The gateway answered a predict request with something other than 200 (``reply`` says what)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"predict refused with {reply.status}")
        self.reply = reply


class RateLimitedByTarget(PredictRefused):
    """The gateway answered 429: its rate limit held."""


@dataclass(frozen=True, slots=True)
class Tokens:
    """The bearer tokens a run was given; only ``inference`` is required. Never printed (see ``__repr__``).

    ``other_model``: a valid token restricted to another model; ``expired`` and ``revoked``: tokens
    in those states (the access suite presents them when given, and mints them in ``--home`` mode).
    """

    inference: str = field(repr=False)
    audit: str | None = field(default=None, repr=False)
    data: str | None = field(default=None, repr=False)
    model_write: str | None = field(default=None, repr=False)
    promote: str | None = field(default=None, repr=False)
    admin: str | None = field(default=None, repr=False)
    other_model: str | None = field(default=None, repr=False)
    expired: str | None = field(default=None, repr=False)
    revoked: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        given = [f.name for f in fields(self) if getattr(self, f.name)]
        return f"Tokens(given={given})"

    def secrets(self) -> list[str]:
        """Every token value given (for scrubbing evidence before it is written)."""
        return [v for f in fields(self) if isinstance(v := getattr(self, f.name), str) and v]


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer: status, headers (lowercase names), body bytes, elapsed seconds."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    seconds: float = 0.0

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def is_problem(self) -> bool:
        """An RFC 9457 problem+json answer with a status and a title or detail."""
        doc = self.json()
        return (
            self.content_type == "application/problem+json"
            and isinstance(doc, dict)
            and ("title" in doc or "detail" in doc)
        )

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def summary(self) -> dict[str, Any]:
        """Evidence: status, content type and (for problems) type/title/detail; never the whole body."""
        out: dict[str, Any] = {"status": self.status, "content_type": self.content_type}
        doc = self.json()
        if isinstance(doc, dict):
            out.update({k: str(doc[k])[:200] for k in ("type", "title", "detail") if k in doc})
        return out


class HttpClient(Protocol):
    """What a target needs of an HTTP client (``httpx.Client`` has it)."""

    def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = False,
        extensions: Mapping[str, Any] | None = None,
    ) -> Any: ...

    def close(self) -> None: ...


class Target:
    """The gateway at ``base_url`` serving ``model``, attacked with ``tokens`` within ``budget`` model queries.

    ``queries`` counts predicted rows (what an extraction attack pays for); ``requests`` counts HTTP
    requests of every kind. :meth:`predict` refuses to go past the budget.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        tokens: Tokens,
        budget: int = 10_000,
        timeout: float = 10.0,
        client: HttpClient | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise InvalidInput(f"target url must be http(s)://host[:port][/prefix], got {base_url[:100]!r}")
        if budget < 1:
            raise InvalidInput("budget must be 1 or more")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.tokens = tokens
        self.budget = budget
        self.timeout = timeout
        self.queries = 0
        self.requests = 0
        self.served: dict[str, Any] = {}
        """``version`` and ``sha256`` of the model version that answered the last prediction."""
        self._client = client if client is not None else _httpx_client(timeout)

    def __repr__(self) -> str:
        return f"Target({self.base_url!r}, model={self.model!r}, {self.tokens!r})"

    @property
    def remaining(self) -> int:
        """Model queries left in the budget."""
        return max(0, self.budget - self.queries)

    def close(self) -> None:
        self._client.close()

    def url(self, path: str) -> str:
        """``base_url`` + ``path``; a path that is not a plain absolute path is refused (only ever this target)."""
        if not path.startswith("/") or path.startswith("//") or "://" in path.split("?")[0]:
            raise InvalidInput(f"a target path must start with a single '/', got {path[:60]!r}")
        return self.base_url + path

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        raw_target: bytes | None = None,
    ) -> Reply:
        """Send one request to this target. ``raw_target``: the request line's path, sent byte for byte."""
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            content = json.dumps(json_body, allow_nan=True).encode()
            sent.setdefault("Content-Type", "application/json")
        extensions = {"target": raw_target} if raw_target is not None else None
        started = time.perf_counter()
        with _translated(self.base_url):
            response = self._client.request(
                method, self.url(path), content=content, headers=sent, follow_redirects=False, extensions=extensions
            )
        self.requests += 1
        return Reply(
            status=int(response.status_code),
            headers={k.lower(): v for k, v in response.headers.items()},
            body=bytes(response.content),
            seconds=time.perf_counter() - started,
        )

    def predict(self, rows: list[Any], *, token: str | None = None) -> list[dict[str, Any]]:
        """The model's answer for ``rows`` (one dict per row) through the gateway's predict route.

        Counts ``len(rows)`` queries against the budget first (raises :class:`BudgetExhausted`);
        raises :class:`RateLimitedByTarget` on 429 and :class:`PredictRefused` on any other non-200.
        """
        if len(rows) > self.remaining:
            raise BudgetExhausted(f"query budget exhausted: {self.queries} of {self.budget} used")
        self.queries += len(rows)
        reply = self.request(
            "POST",
            f"/v1/models/{self.model}/predict",
            token=self.tokens.inference if token is None else token,
            json_body={"inputs": rows},
        )
        if reply.status == 429:
            raise RateLimitedByTarget(reply)
        doc = reply.json()
        if reply.status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("predictions"), list):
            raise PredictRefused(reply)
        self.served = {"version": doc.get("version"), "sha256": doc.get("sha256")}
        return list(doc["predictions"])

    def labels(self, rows: list[Any]) -> list[Any]:
        """The predicted ``label`` of each row (see :meth:`predict`)."""
        return [p.get("label") for p in self.predict(rows)]


def _httpx_client(timeout: float) -> HttpClient:
    require_extra("redteam")
    import httpx  # the redteam extra

    client: HttpClient = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False)
    return client


@contextmanager
def _translated(base_url: str) -> Iterator[None]:
    """httpx transport errors as :class:`TargetUnreachable` (one line, naming the target, not the request)."""
    import httpx  # the redteam extra

    try:
        yield
    except httpx.TimeoutException as exc:
        raise TargetUnreachable(f"target {base_url} did not answer in time") from exc
    except httpx.TransportError as exc:
        raise TargetUnreachable(f"target {base_url} is unreachable: {type(exc).__name__}") from exc
