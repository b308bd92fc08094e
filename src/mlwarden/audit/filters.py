"""What an audit query asks for: the filter, parsed from user text with clear errors.

Times are RFC 3339 / ISO 8601 (``2026-11-26T10:00:00Z``, ``2026-11-26``; a time without an
offset is UTC) or relative to now (``90s``, ``30m``, ``1h``, ``7d``, ``2w``: that long ago).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from mlwarden.errors import InvalidInput

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_TEXT = 512
_RELATIVE = re.compile(r"^([0-9]{1,9})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_KIND = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
_DECISION = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def entry_time(moment: datetime) -> str:
    """``moment`` in the ledger's time format (RFC 3339 UTC, microseconds, ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str, *, name: str, now: datetime | None = None) -> datetime:
    """An ISO time or a relative ``1h``/``30m``/``7d`` (ago from ``now``); aware, in UTC.

    ``name`` is the option or parameter it came from, for the error message.
    """
    raw = text.strip()
    match = _RELATIVE.fullmatch(raw)
    if match:
        try:
            delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
            return (now or datetime.now(UTC)) - delta
        except OverflowError as exc:
            raise InvalidInput(f"{name} {text!r} reaches back before year 1") from exc
    try:
        moment = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError as exc:
        raise InvalidInput(
            f"{name} {text[:64]!r} is not a time: use ISO 8601 (2026-11-26T10:00:00Z) or a duration ago (30m, 1h, 7d)"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Entries to find: every given field must match; results ascend by index from ``since_index``."""

    kinds: tuple[str, ...] = ()
    principal: str | None = None
    subject_prefix: str | None = None
    model: str | None = None
    """A model name (``bc``) or name and version (``bc:3``): subjects ``model:bc`` and ``model:bc:…``."""
    decision: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    since_index: int = 0
    status: int | None = None
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        for kind in self.kinds:
            if not _KIND.fullmatch(kind):
                raise InvalidInput(f"kind {kind[:70]!r} is not an entry kind (lowercase, e.g. prediction)")
        for name, value in (("principal", self.principal), ("subject", self.subject_prefix), ("model", self.model)):
            if value is not None and not 0 < len(value) <= MAX_TEXT:
                raise InvalidInput(f"{name} must be 1-{MAX_TEXT} characters")
        if self.decision is not None and not _DECISION.fullmatch(self.decision):
            raise InvalidInput("decision must be a decision id (1-64 letters, digits, '_', '.', ':' or '-')")
        if self.since_index < 0:
            raise InvalidInput(f"since_index must be 0 or more, got {self.since_index}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {self.limit}")
        if self.status is not None and not 100 <= self.status <= 999:
            raise InvalidInput(f"status must be an HTTP status (100-999), got {self.status}")
        for name, moment in (("since", self.since), ("until", self.until)):
            if moment is not None and moment.tzinfo is None:
                raise InvalidInput(f"{name} must carry a time zone")
        if self.since is not None and self.until is not None and self.until < self.since:
            raise InvalidInput("until is before since: nothing can match")

    def after(self, index: int) -> AuditFilter:
        """The same filter, continuing after entry ``index`` (the next page)."""
        return replace(self, since_index=index + 1)

    def with_limit(self, limit: int) -> AuditFilter:
        """The same filter with another page size."""
        return replace(self, limit=limit)


def parse_filter(
    *,
    kinds: list[str] | None = None,
    principal: str | None = None,
    subject: str | None = None,
    model: str | None = None,
    decision: str | None = None,
    since: str | None = None,
    until: str | None = None,
    since_index: int | None = None,
    status: int | None = None,
    limit: int | None = None,
    now: datetime | None = None,
) -> AuditFilter:
    """An :class:`AuditFilter` from user text (CLI options, query parameters).

    Raises :class:`InvalidInput` naming the bad one.
    """
    kind_list: list[str] = []
    for item in kinds or []:
        kind_list.extend(part.strip() for part in item.split(",") if part.strip())
    moment = now or datetime.now(UTC)
    return AuditFilter(
        kinds=tuple(dict.fromkeys(kind_list)),
        principal=principal,
        subject_prefix=subject,
        model=model,
        decision=decision,
        since=None if since is None else parse_time(since, name="since", now=moment),
        until=None if until is None else parse_time(until, name="until", now=moment),
        since_index=0 if since_index is None else since_index,
        status=status,
        limit=DEFAULT_LIMIT if limit is None else limit,
    )
