"""Create and open a workspace: its folders, database, migrations, signing key and ledger."""

from __future__ import annotations

import os
import pwd
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from mlwarden.config import WorkspaceOptions
from mlwarden.errors import ConfigError, KeyFileError, StoreError, WorkspaceNotFound
from mlwarden.ledger.keys import load_signer, write_private_key
from mlwarden.ledger.log import Log, initialise
from mlwarden.ledger.notes import NoteSigner
from mlwarden.store.engine import create_db_engine, describe_db_error, write_transaction
from mlwarden.store.migrate import upgrade
from mlwarden.store.schema import ledger_head, meta

ORIGIN_KEY = "ledger_origin"


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


def init_workspace(options: WorkspaceOptions) -> dict[str, str]:
    """Create (or complete) a workspace; idempotent. Returns where everything is."""
    paths = options.paths
    try:
        for folder in (paths.home, paths.keys, paths.artifacts, paths.checkpoints):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create workspace at {paths.home}: {exc.strerror}") from exc
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
        signer = load_signer(paths.signing_key, str(origin))
        fingerprint = signer.verifier().fingerprint
        paths.public_key.write_text(signer.verifier().vkey() + "\n", encoding="utf-8")
        if not paths.policy.exists():
            from mlwarden.gates.runner import DEFAULT_POLICY

            paths.policy.write_text(DEFAULT_POLICY, encoding="utf-8")
        with write_transaction(engine) as conn:
            initialise(conn, signer)
        Log(engine, signer, publish_dir=paths.checkpoints).check_head()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot initialise the database {options.display_url}: {describe_db_error(exc)}") from exc
    finally:
        engine.dispose()
    return {
        "workspace": str(paths.home),
        "database": options.display_url,
        "signing_key": f"{paths.signing_key} (ed25519, mode 0600)",
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
