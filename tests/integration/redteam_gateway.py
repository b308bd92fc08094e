"""A served workspace for the attack suites: the demo model, an overfit and a regularised one, on loopback uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import uvicorn

from mlwarden.api.app import create_app
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.tokens import create_token
from mlwarden.registry.dataset_versions import register_dataset
from mlwarden.registry.governance import approve_and_promote
from mlwarden.registry.models import register_model
from mlwarden.samples import breast_cancer_model
from mlwarden.workspace import init_workspace, open_workspace

START_TIMEOUT = 60.0
"""Seconds the server may take to listen on this busy two-core machine."""
LABEL_NOISE = 0.2
"""Share of training labels flipped for the membership models: memorising them is what overfitting looks like."""


@dataclass(frozen=True, slots=True)
class AttackZoo:
    """A workspace serving ``bc`` (the demo model), ``overfit`` and ``regular``, with their data and a token."""

    options: WorkspaceOptions
    token: str
    train_x: np.ndarray
    train_y: np.ndarray
    noisy_y: np.ndarray
    """The training labels ``overfit`` and ``regular`` were fitted to."""
    eval_x: np.ndarray
    eval_y: np.ndarray


def _csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    return data[:, :-1], data[:, -1].astype(np.int64)


def _onnx(model: object, x: np.ndarray, path: Path) -> Path:
    from skl2onnx import to_onnx

    options = {id(model): {"zipmap": False}}
    path.write_bytes(to_onnx(model, x[:1].astype(np.float32), options=options, target_opset=17).SerializeToString())
    return path


def build_zoo(folder: Path) -> AttackZoo:
    """Train the three models, register and promote them, and mint an ``inference:read`` token."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sample = breast_cancer_model(folder / "art")
    train_x, train_y = _csv(sample.train_csv)
    eval_x, eval_y = _csv(sample.eval_csv)
    flip = np.random.default_rng(1).random(len(train_y)) < LABEL_NOISE
    noisy_y = np.where(flip, 1 - train_y, train_y)
    x32 = train_x.astype(np.float32)
    overfit = RandomForestClassifier(n_estimators=30, bootstrap=False, random_state=0).fit(x32, noisy_y)
    regular = make_pipeline(StandardScaler(), LogisticRegression(C=0.01)).fit(x32, noisy_y)
    options = WorkspaceOptions.from_settings(Settings(database_url=None), folder / "ws")
    init_workspace(options)
    ws = open_workspace(options)
    try:
        register_dataset(ws, name="breast-cancer-train", path=sample.train_csv, principal="alice")
        for name, path in (("bc", sample.onnx), ("overfit", _onnx(overfit, train_x, folder / "overfit.onnx")),
                           ("regular", _onnx(regular, train_x, folder / "regular.onnx"))):  # fmt: skip
            register_model(ws, name=name, path=path, card_path=sample.card, principal="alice")
            approve_and_promote(ws, name, 1, approver="reviewer")
        token, _ = create_token(ws, name="attacker", scopes=["inference:read"], principal="admin")
    finally:
        ws.close()
    return AttackZoo(options, token, train_x, train_y, noisy_y, eval_x, eval_y)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(options: WorkspaceOptions, *, rate_limit: float, rate_burst: float = 200.0) -> Iterator[str]:
    """The gateway on a loopback port (uvicorn in a thread) with the given rate limit; yields its base URL."""
    settings = Settings(database_url=None, rate_limit=rate_limit, rate_burst=rate_burst, gc_freeze=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(options, settings), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the gateway did not start")
        time.sleep(0.05)  # uvicorn exposes no start event; bounded by START_TIMEOUT
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
