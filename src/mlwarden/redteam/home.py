"""``--home`` mode: the workspace's gateway started in this process, attacked with tokens minted for the run.

The gateway is the real one (:func:`mlwarden.api.app.create_app` under uvicorn on a free loopback
port); the tokens are created through the identity service, live one hour at most and are revoked
when the run ends. Only this mode reads the workspace (the model's signature, its training rows, the
ledger): ``--url`` mode has nothing but the tokens it is given.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.errors import ConfigError, NotFound
from mlwarden.identity.tokens import create_token, revoke_token
from mlwarden.monitor.service import watching
from mlwarden.redteam.ledger_view import LocalLedgerView
from mlwarden.redteam.rows import ranges_from, read_rows, stored_rows
from mlwarden.redteam.suites import FeatureRange, LabelledRows
from mlwarden.redteam.target import Tokens
from mlwarden.registry.dataset_versions import dataset_file, get_dataset
from mlwarden.registry.models import get_version, load_model
from mlwarden.trust.follower import follower
from mlwarden.workspace import Workspace, open_workspace

START_SECONDS = 60.0
"""How long the in-process gateway may take to start listening."""
OTHER_MODEL = "redteam-other-model"
"""The model the "other model's token" is restricted to (it need not exist)."""


@dataclass(frozen=True, slots=True)
class HomeRun:
    """What a ``--home`` run attacks and knows."""

    base_url: str
    tokens: Tokens
    version: int
    sha256: str
    features: tuple[FeatureRange, ...]
    reference: LabelledRows | None
    training: LabelledRows | None
    label: str | None
    dataset: str | None
    ledger: LocalLedgerView


def _mint(ws: Workspace, model: str, principal: str) -> tuple[Tokens, list[str]]:
    """Short-lived tokens for the run: one per role the suites play, plus an expired and a revoked one."""
    hour = datetime.now(UTC) + timedelta(hours=1)
    made: dict[str, str] = {}
    ids: list[str] = []
    roles: dict[str, tuple[list[str], list[str] | None, datetime]] = {
        "inference": (["inference:read"], [model], hour),
        "audit": (["audit:read"], None, hour),
        "data": (["data:write"], None, hour),
        "model_write": (["model:write", "model:promote"], None, hour),  # the author may approve: must not count
        "promote": (["model:promote"], None, hour),
        "other_model": (["inference:read"], [OTHER_MODEL], hour),
        "expired": (["inference:read"], [model], datetime.now(UTC) - timedelta(minutes=5)),
        "revoked": (["inference:read"], [model], hour),
    }
    for role, (scopes, models, expires) in roles.items():
        token, record = create_token(ws, name=f"redteam-{role}", scopes=scopes, principal=principal, models=models,
                                     expires_at=expires)  # fmt: skip
        made[role] = token
        ids.append(record.token_id)
    revoke_token(ws, ids[-1], principal)
    return Tokens(**made), ids


def _production(ws: Workspace, model: str) -> tuple[int, str]:
    facts = follower(ws).refresh().production(model)
    if facts is None:
        raise NotFound(f"model {model} has no production version in this workspace: nothing is served to attack")
    return int(facts.version), str(facts.sha256)


def _known(ws: Workspace, model: str, version: int, dataset: str | None, principal: str) -> dict[str, Any]:
    """The model's features and (with a dataset) its training rows, as an insider would know them."""
    served = load_model(ws, model, version, principal)
    features = tuple(FeatureRange(f.name, f.dtype, f.minimum, f.maximum) for f in served.model.signature.features)
    reference = training = label = None
    if dataset is not None:
        row = get_dataset(ws, dataset, 1)
        label = row.get("label")
        path = dataset_file(ws, row)
        reference = read_rows(path, label=label, features=features)
        training = stored_rows(path, label=label)
        features = ranges_from(reference, features)
    return {"features": features, "reference": reference, "label": label, "training": training}


def _ledger_view(ws: Workspace) -> LocalLedgerView:
    def rows(since: int) -> list[dict[str, Any]]:
        size = ws.log.size()
        return [ws.log.entry(i).parse().to_json() for i in range(max(0, since), size)][:10_000]

    return LocalLedgerView(ws.log.size, rows)


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def serving(options: WorkspaceOptions, settings: Settings) -> Iterator[str]:
    """The gateway on a free loopback port, in a thread, until the block ends."""
    import uvicorn

    from mlwarden.api.app import create_app

    sock = _listening_socket()
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(create_app(options, settings), log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="redteam-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise ConfigError("the in-process gateway did not start (see the log above)")
        time.sleep(0.05)  # polling uvicorn's own readiness flag, bounded by the deadline
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextlib.contextmanager
def home_run(
    options: WorkspaceOptions, settings: Settings, *, model: str, dataset: str | None, principal: str
) -> Iterator[HomeRun]:
    """Serve ``model``'s production version from this workspace and hand over what the suites need."""
    ws = open_workspace(options)
    ids: list[str] = []
    try:
        version, sha256 = _production(ws, model)
        get_version(ws, model, version)
        dataset = dataset or _only_dataset(ws)
        known = _known(ws, model, version, dataset, principal)
        tokens, ids = _mint(ws, model, principal)
        with serving(options, settings) as base_url, watching(options, environ=os.environ):
            yield HomeRun(base_url, tokens, version, sha256, known["features"], known["reference"], known["training"],
                          known["label"],
                          dataset, _ledger_view(ws))  # fmt: skip
    finally:
        for token_id in ids:
            with contextlib.suppress(Exception):
                revoke_token(ws, token_id, principal)
        ws.close()


def _only_dataset(ws: Workspace) -> str | None:
    """The workspace's dataset when it has exactly one (the poisoning suite's target), else None."""
    from sqlalchemy import select

    from mlwarden.store.schema import dataset_versions

    with ws.engine.connect() as conn:
        names = {r[0] for r in conn.execute(select(dataset_versions.c.name).distinct())}
    return next(iter(names)) if len(names) == 1 else None
