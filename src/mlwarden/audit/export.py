"""Streaming export of the record: every entry from an index on, as JSON lines, OCSF or ECS.

Reads in pages of :data:`PAGE` entries (keyset by index), writes one JSON object per line
and flushes each page, so memory stays flat on any ledger size; with a ``wait`` it then
follows new entries like ``tail -f`` until ``wait`` says stop.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, TextIO

import orjson
from sqlalchemy import Engine

from mlwarden.audit.filters import AuditFilter
from mlwarden.audit.query import AuditRow, Wait, query_page
from mlwarden.monitor.formats import entry_to_ecs, entry_to_ocsf

PAGE = 2000


class ExportFormat(StrEnum):
    """What each exported line is."""

    JSONL = "jsonl"
    OCSF = "ocsf"
    ECS = "ecs"


def _jsonl(index: int, row: AuditRow) -> dict[str, Any]:
    return row.to_json()


RENDERERS: dict[ExportFormat, Callable[[int, AuditRow], dict[str, Any]]] = {
    ExportFormat.JSONL: _jsonl,
    ExportFormat.OCSF: entry_to_ocsf,
    ExportFormat.ECS: entry_to_ecs,
}


def render_line(fmt: ExportFormat, row: AuditRow) -> str:
    """One exported line (no newline)."""
    return orjson.dumps(RENDERERS[fmt](row.index, row)).decode()


def export_entries(
    engine: Engine,
    out: TextIO,
    fmt: ExportFormat,
    *,
    since_index: int = 0,
    wait: Wait | None = None,
    poll_s: float = 0.5,
) -> int:
    """Write every entry from ``since_index`` on to ``out``; follow new ones while ``wait`` allows.

    Returns how many lines were written.
    """
    flt = AuditFilter(since_index=since_index, limit=PAGE)
    written = 0
    while True:
        page = query_page(engine, flt)
        if page.rows:
            out.write("".join(render_line(fmt, row) + "\n" for row in page.rows))
            out.flush()
            written += len(page.rows)
        flt = flt.after(page.cursor - 1)
        if page.next_since_index is None and (wait is None or wait(poll_s)):
            return written
