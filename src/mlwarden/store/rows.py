"""Stream ledger rows straight from the driver: the one read path that must go at disk speed.

Imports no SQLAlchemy at run time, so verification worker processes start quickly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlwarden.errors import LedgerUnavailable

if TYPE_CHECKING:
    from sqlalchemy import Engine

_SQL = {
    # The entry's UTF-8 bytes, without decoding to text and encoding again in Python.
    "sqlite": "SELECT idx, CAST(entry AS BLOB), leaf_hash FROM ledger_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
    "postgresql": "SELECT idx, convert_to(entry, 'UTF8'), leaf_hash FROM ledger_entries "
    "WHERE idx >= %s AND idx < %s ORDER BY idx",
}
_NO_END = 2**62


@dataclass(frozen=True, slots=True)
class DriverTarget:
    """How a worker process reaches the database with the bare driver (never logged)."""

    dialect: str
    dsn: str

    @classmethod
    def from_engine(cls, engine: Engine) -> DriverTarget:
        url = engine.url
        if url.get_backend_name() == "sqlite":
            return cls("sqlite", str(url.database))
        return cls("postgresql", url.set(drivername="postgresql").render_as_string(hide_password=False))

    def connect(self) -> Any:
        if self.dialect == "sqlite":
            return sqlite3.connect(f"file:{self.dsn}?mode=ro", uri=True, timeout=30)
        import psycopg

        return psycopg.connect(self.dsn)


def _read(driver: Any, dialect: str, start: int, stop: int | None, chunk: int) -> Iterator[tuple[int, bytes, bytes]]:
    # PostgreSQL: a named (server-side) cursor streams without loading the table.
    cur = driver.cursor(name="mlwarden_rows") if dialect == "postgresql" else driver.cursor()
    try:
        cur.execute(_SQL[dialect], (start, _NO_END if stop is None else stop))
        while True:
            rows = cur.fetchmany(chunk)
            if not rows:
                break
            yield from rows  # (int, bytes, bytes): sqlite3 and psycopg both return bytes for blobs
    finally:
        cur.close()


def stream_target(
    target: DriverTarget, start: int, stop: int | None, *, chunk: int = 10_000
) -> Iterator[tuple[int, bytes, bytes]]:
    """Rows ``start <= index < stop`` over a fresh driver connection (for worker processes)."""
    try:
        driver = target.connect()
    except Exception as exc:
        raise LedgerUnavailable(f"ledger could not read entries: {type(exc).__name__}") from exc
    try:
        yield from _read(driver, target.dialect, start, stop, chunk)
    finally:
        driver.close()


def stream_rows(
    engine: Engine, start: int = 0, stop: int | None = None, *, chunk: int = 10_000
) -> Iterator[tuple[int, bytes, bytes]]:
    """Yield ``(index, entry bytes, leaf hash)`` for ``start <= index < stop`` in index order."""
    dialect = engine.dialect.name
    dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
    try:
        conn: Any = engine.raw_connection()
    except Exception as exc:
        raise LedgerUnavailable(f"ledger could not read entries: {exc}") from exc
    try:
        driver = conn.driver_connection
        yield from _read(driver, dialect, start, stop, chunk)
        if dialect == "postgresql":
            driver.rollback()
    except dbapi_error as exc:
        raise LedgerUnavailable(f"ledger could not read entries: {str(exc).splitlines()[0][:200]}") from exc
    finally:
        conn.close()
