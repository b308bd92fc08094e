"""What an intruder with write access to the database (but not the workspace keys) can do: ``--home`` only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.tokens import create_token, revoke_token
from mlwarden.store.schema import model_versions
from mlwarden.workspace import local_principal, open_workspace


@contextlib.contextmanager
def marked_production(home: Path, model: str, version: int) -> Iterator[str]:
    """Set ``model`` ``version``'s stage column to production by SQL; yield an inference token for it.

    Undone (stage back to candidate, token revoked) when the block ends.
    """
    ws = open_workspace(WorkspaceOptions.from_settings(Settings(), home))
    where = (model_versions.c.name == model, model_versions.c.version == version)
    token_id = None
    try:
        expires = datetime.now(UTC) + timedelta(hours=1)
        token, record = create_token(ws, name="redteam-intruder", scopes=["inference:read"], models=[model],
                                     principal=local_principal(), expires_at=expires)  # fmt: skip
        token_id = record.token_id
        with ws.engine.begin() as conn:
            conn.execute(update(model_versions).where(*where).values(stage="production"))
        yield token
    finally:
        with ws.engine.begin() as conn:
            conn.execute(update(model_versions).where(*where).values(stage="candidate"))
        if token_id is not None:
            revoke_token(ws, token_id, local_principal())
        ws.close()
