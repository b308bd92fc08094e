"""Create and open a workspace: its folders, database, migrations, signing key and ledger."""

from __future__ import annotations

import os
import pwd
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from mlwarden.config import WorkspaceOptions
from mlwarden.errors import ConfigError, KeyFileError, StoreError, WorkspaceNotFound
from mlwarden.ledger.keys import load_signer, write_private_key
from mlwarden.ledger.log import Log, initialise
from mlwarden.ledger.notes import NoteSigner
from mlwarden.privacy.kek import write_kek
from mlwarden.store.engine import create_db_engine, describe_db_error, write_transaction
from mlwarden.store.migrate import upgrade
from mlwarden.store.schema import ledger_head, meta, privacy_keys, privacy_payloads, privacy_rows

ORIGIN_KEY = "ledger_origin"
PRIVATE_FILE = 0o600


@dataclass(frozen=True, slots=True)
class Workspace:
    """An opened workspace: where it is, its database and its ledger."""

    options: WorkspaceOptions
    engine: Engine
    log: Log
    signer: NoteSigner
    services: dict[str, Any] = field(default_factory=dict)
    """Per-process helpers that layers above attach (e.g. the verified state follower)."""

    def close(self) -> None:
        """Stop attached helpers, publish the newest ledger head outside the database, release connections."""
        try:
            for service in self.services.values():
                closer = getattr(service, "close", None)
                if callable(closer):
                    closer()
            self.log.close()
        finally:
            self.engine.dispose()


def local_principal() -> str:
    """The principal for commands run by a local operator: the OS account of the process's uid.

    Never ``$LOGNAME``, ``$USER`` or ``getpass.getuser()``: those are whatever the caller set.
    An uid with no account entry is ``local:uid:<n>``.
    """
    uid = os.getuid()
    try:
        return f"local:{pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"local:uid:{uid}"


def _read_origin(engine: Engine) -> str | None:
    with engine.connect() as conn:
        row = conn.execute(select(meta.c.value).where(meta.c.key == ORIGIN_KEY)).first()
    return None if row is None else str(row[0])


def _private_file(path: Path, text: str | None = None) -> None:
    """Create ``path`` with mode 0600 (folders are 0700), or tighten an existing one to 0600.

    With ``text`` the file's content is (re)written; without, an existing file is left as it is.
    Created private from the first byte (never chmod after the fact), whatever the umask.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if text is not None else 0)
    with os.fdopen(os.open(path, flags, PRIVATE_FILE), "wb") as handle:
        os.fchmod(handle.fileno(), PRIVATE_FILE)
        if text is not None:
            handle.write(text.encode("utf-8"))


def _private_sqlite(url: str) -> None:
    """The SQLite database file (and its WAL/SHM, which SQLite creates with the database's mode) 0600."""
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:" or name.startswith("file:"):
        return
    database = Path(name)
    _private_file(database)
    for suffix in ("-wal", "-shm", "-journal"):
        extra = database.with_name(database.name + suffix)
        if extra.exists():
            os.chmod(extra, PRIVATE_FILE)


def _ensure_privacy_kek(engine: Engine, path: Path) -> None:
    """Create the KEK unless it exists; refuse when anything sealed is stored but its KEK is gone.

    Keys of the day, keys inline in payload rows and the rows that derive theirs all need the
    KEK that sealed them: a new one would silently make every one of them unreadable.
    """
    if path.exists():
        _private_file(path)
        return
    with engine.connect() as conn:
        sealed = any(
            conn.execute(select(column).limit(1)).first() is not None
            for column in (privacy_keys.c.key_id, privacy_payloads.c.decision_id, privacy_rows.c.decision_id)
        )
    if sealed:
        raise KeyFileError(
            f"the database holds sealed personal data but {path} is missing: "
            "copy the key from the workspace that created it"
        )
    write_kek(path)


def init_workspace(options: WorkspaceOptions) -> dict[str, str]:
    """Create (or complete) a workspace; idempotent. Returns where everything is.

    Every folder it creates is 0700 and every file it writes (database, WAL, policy, keys) 0600;
    running it on an existing workspace tightens those files to 0600.
    """
    paths = options.paths
    try:
        for folder in (paths.home, paths.keys, paths.artifacts, paths.checkpoints):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        _private_sqlite(options.database_url)
    except OSError as exc:
        raise ConfigError(f"cannot create workspace at {paths.home}: {exc.strerror or exc}") from exc
    engine = create_db_engine(options.database_url)
    try:
        upgrade(engine)
        created_origin = False
        with write_transaction(engine) as conn:
            origin = conn.execute(select(meta.c.value).where(meta.c.key == ORIGIN_KEY)).scalar()
            if origin is None:
                origin = f"mlwarden.local/{secrets.token_hex(6)}"
                conn.execute(insert(meta).values(key=ORIGIN_KEY, value=origin))
                created_origin = True
            has_head = conn.execute(select(ledger_head.c.id)).first() is not None
        if not paths.signing_key.exists():
            if has_head and not created_origin:
                raise KeyFileError(
                    f"the database already holds a ledger but {paths.signing_key} is missing: "
                    "copy the key from the workspace that created it"
                )
            write_private_key(paths.signing_key)
        _ensure_privacy_kek(engine, paths.privacy_kek)
        signer = load_signer(paths.signing_key, str(origin))
        fingerprint = signer.verifier().fingerprint
        _private_file(paths.public_key, signer.verifier().vkey() + "\n")
        if not paths.policy.exists():
            from mlwarden.gates.runner import DEFAULT_POLICY

            _private_file(paths.policy, DEFAULT_POLICY)
        else:
            _private_file(paths.policy)
        with write_transaction(engine) as conn:
            initialise(conn, signer)
        Log(engine, signer, publish_dir=paths.checkpoints).check_head()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot initialise the database {options.display_url}: {describe_db_error(exc)}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot write the workspace at {paths.home}: {exc.strerror or exc}") from exc
    finally:
        engine.dispose()
    return {
        "workspace": str(paths.home),
        "database": options.display_url,
        "signing_key": f"{paths.signing_key} (ed25519, mode 0600)",
        "privacy_kek": f"{paths.privacy_kek} (mode 0600)",
        "public_key": str(paths.public_key),
        "public_key_fingerprint": fingerprint,
        "checkpoints": str(paths.checkpoints),
        "artifacts": str(paths.artifacts),
        "policy": str(paths.policy),
        "ledger_origin": str(origin),
    }


def open_workspace(options: WorkspaceOptions, *, check: bool = True) -> Workspace:
    """Open an initialised workspace; with ``check``, verify the ledger head first."""
    paths = options.paths
    hint = "run `mlwarden init` first, or point --home / MLWARDEN_HOME at an existing workspace"
    if not paths.home.is_dir() or not paths.signing_key.exists():
        raise WorkspaceNotFound(f"no mlwarden workspace at {paths.home}: {hint}")
    if options.is_sqlite and not Path(paths.database).exists():
        raise WorkspaceNotFound(f"no mlwarden database at {paths.database}: {hint}")
    engine = create_db_engine(options.database_url, options.lock_timeout_seconds)
    try:
        if not inspect(engine).has_table("ledger_head"):
            raise WorkspaceNotFound(f"database {options.display_url} holds no mlwarden ledger: {hint}")
        origin = _read_origin(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot open the database {options.display_url}: {describe_db_error(exc)}") from exc
    except WorkspaceNotFound:
        engine.dispose()
        raise
    if origin is None:
        engine.dispose()
        raise WorkspaceNotFound(f"database {options.display_url} has no ledger origin: {hint}")
    signer = load_signer(paths.signing_key, origin)
    log = Log(engine, signer, publish_dir=paths.checkpoints)
    if check:
        try:
            log.check_head()
        except BaseException:
            engine.dispose()
            raise
    return Workspace(options, engine, log, signer)
