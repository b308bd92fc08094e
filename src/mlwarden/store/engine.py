"""Database engines: SQLite in WAL mode with synchronous=FULL, or PostgreSQL via psycopg."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from mlwarden.errors import StoreError

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(timeout_ms: int) -> Any:
    def apply(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's begin hook emits BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={timeout_ms}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return apply


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the write lock up front so two writers never deadlock on upgrade.
    mode = "IMMEDIATE" if conn.get_execution_options().get("mlw_write") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def describe_db_error(exc: BaseException) -> str:
    """One line saying what the database said, without SQLAlchemy's statement dump."""
    original = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    return (lines[0] if lines else type(original).__name__)[:300]


def create_db_engine(url: str, lock_timeout_seconds: float = SQLITE_BUSY_TIMEOUT_MS / 1000) -> Engine:
    """An engine for ``url`` with mlwarden's durability settings and lock timeout."""
    parsed = make_url(url)
    timeout_ms = max(1, int(lock_timeout_seconds * 1000))
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(
                url,
                connect_args={"timeout": timeout_ms / 1000, "check_same_thread": False},
                pool_size=8,
                max_overflow=64,
            )
            event.listen(engine, "connect", _sqlite_pragmas(timeout_ms))
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        if parsed.get_backend_name() == "postgresql":
            from mlwarden.extras import require_extra

            require_extra("postgres")
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=8,
            max_overflow=64,
            connect_args={"options": f"-c lock_timeout={timeout_ms}"},
        )
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(
            f"cannot use database {parsed.render_as_string(hide_password=True)}: {describe_db_error(exc)}"
        ) from exc


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the database's write lock from its first statement."""
    with engine.connect() as conn:
        conn.execution_options(mlw_write=True)
        with conn.begin():
            yield conn
