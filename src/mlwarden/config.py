"""Settings (environment prefix ``MLWARDEN_``) and the workspace's paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from mlwarden.errors import ConfigError

DEFAULT_HOME = Path(".mlwarden")


class Settings(BaseSettings):
    """Everything read from the environment, once, at the composition root."""

    model_config = SettingsConfigDict(env_prefix="MLWARDEN_", extra="ignore")

    home: Path = DEFAULT_HOME
    database_url: str | None = None
    max_body_bytes: int = 1 << 20
    """JSON bodies of every route without its own limit (and predictions, unless set below)."""
    max_body_bytes_predict: int | None = None
    max_upload_bytes_model: int = 512 << 20
    max_upload_bytes_batch: int = 256 << 20
    max_rows: int = 1000
    rate_limit: float = 100.0
    rate_burst: float = 200.0
    anon_rate_limit: float = 5.0
    """Unauthenticated rejections per second per source address before it is refused at the door."""
    anon_rate_burst: float = 50.0
    rejection_summary_seconds: float = 10.0
    rejection_summary_events: int = 10_000
    rejection_summary_top: int = 20
    auth_cache_seconds: float = 1.0
    model_refresh_seconds: float = 1.0
    db_lock_timeout_seconds: float = 30.0
    ledger_sign_interval_seconds: float = 1.0
    """How often, at most, group commits re-sign the ledger head (also signed on demand and at shutdown)."""
    ledger_batch_wait_seconds: float = 0.0005
    """How long ``serve``'s ledger writer lets a small batch wait to grow before committing it."""
    ledger_writer_socket: Path | None = None
    """Set by ``serve`` for its workers: record through the ledger writer listening here."""
    ledger_writer_timeout_seconds: float = 10.0
    """A worker gives up on (and reconnects to) a ledger writer that confirms nothing for this long."""
    gc_freeze: bool = True
    console_session_seconds: int = 8 * 3600
    """How long a console sign-in lasts (the token behind it is re-checked on every page)."""


@dataclass(frozen=True, slots=True)
class WorkspacePaths:
    """Where a workspace keeps its files."""

    home: Path

    @property
    def database(self) -> Path:
        """The embedded SQLite database."""
        return self.home / "mlwarden.db"

    @property
    def artifacts(self) -> Path:
        """Content-addressed blobs."""
        return self.home / "artifacts"

    @property
    def keys(self) -> Path:
        """Key material (mode 0700)."""
        return self.home / "keys"

    @property
    def signing_key(self) -> Path:
        """The ledger's Ed25519 private key (mode 0600)."""
        return self.keys / "ledger.key"

    @property
    def privacy_kek(self) -> Path:
        """The key-encryption key that wraps personal-data keys (mode 0600), beside the signing key."""
        return self.keys / "privacy.kek"

    @property
    def public_key(self) -> Path:
        """The ledger's verifier key, in signed-note ``name+id+key`` form."""
        return self.keys / "ledger.pub"

    @property
    def checkpoints(self) -> Path:
        """Checkpoints published outside the database."""
        return self.home / "checkpoints"

    @property
    def policy(self) -> Path:
        """The workspace policy."""
        return self.home / "policy.yaml"


@dataclass(frozen=True, slots=True)
class WorkspaceOptions:
    """What a command needs to find a workspace: its home and database URL."""

    paths: WorkspacePaths
    database_url: str
    lock_timeout_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings, home: Path | None = None) -> WorkspaceOptions:
        """Resolve the home (``--home`` beats ``MLWARDEN_HOME`` beats ``./.mlwarden``)."""
        paths = WorkspacePaths((home or settings.home).expanduser().absolute())
        url = settings.database_url or f"sqlite:///{paths.database}"
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(f"MLWARDEN_DATABASE_URL is not a database URL: {exc}") from exc
        if parsed.get_backend_name() not in ("sqlite", "postgresql"):
            raise ConfigError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql+psycopg")
        return cls(paths, url, settings.db_lock_timeout_seconds)

    @property
    def display_url(self) -> str:
        """The database URL with any password hidden."""
        return make_url(self.database_url).render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is the embedded SQLite file."""
        return make_url(self.database_url).get_backend_name() == "sqlite"
