"""The demo's attacks on a running gateway: an extraction attempt and a credential-stuffing burst.

Call it after ``mlwarden serve`` is up (its watcher raises the alerts)::

    from mlwarden.monitor.demo_attacks import demo_attacks
    found = demo_attacks("http://127.0.0.1:8000", token=inference_token, audit_token=audit_token,
                         model="bc", training_csv=sample.train_csv)

It sweeps the model's feature ranges evenly from one principal (``rows`` rows in batches),
sends ``guesses`` requests with made-up tokens, then polls ``GET /v1/alerts`` until both
alerts are there or ``timeout`` seconds pass. Unauthenticated failures reach the ledger in
the gateway's rejection summaries (every ``MLWARDEN_REJECTION_SUMMARY_SECONDS``), so the
credential-stuffing alert follows the next summary.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 25
WANTED = ("inference.extraction", "auth.failure_burst")


def _training_ranges(csv: Path) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(csv, delimiter=",", skiprows=1)
    features = table[:, :-1]
    return features.min(axis=0), features.max(axis=0)


def demo_attacks(
    base_url: str,
    *,
    token: str,
    audit_token: str,
    model: str,
    training_csv: Path,
    rows: int = 600,
    guesses: int = 40,
    timeout: float = 60.0,
    verify: bool | str = True,
) -> dict[str, Any]:
    """Run both attacks; ``{"extraction": alert | None, "credential_stuffing": alert | None, "waited_s": s}``.

    Needs ``httpx`` (the ``demo`` extra).
    """
    import httpx

    low, high = _training_ranges(training_csv)
    rng = np.random.default_rng()
    with httpx.Client(base_url=base_url, timeout=10.0, verify=verify) as client:
        sweep = rng.uniform(low, high, size=(rows, len(low)))
        for start in range(0, rows, BATCH):
            client.post(f"/v1/models/{model}/predict", json={"inputs": sweep[start : start + BATCH].tolist()},
                        headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        for _ in range(guesses):
            made_up = f"mlw_{secrets.token_hex(6)}_{secrets.token_urlsafe(24)}"
            client.post(f"/v1/models/{model}/predict", json={"inputs": [sweep[0].tolist()]},
                        headers={"Authorization": f"Bearer {made_up}"})  # fmt: skip
        started = time.monotonic()
        found: dict[str, dict[str, Any]] = {}
        while time.monotonic() - started < timeout and len(found) < len(WANTED):
            listed = client.get("/v1/alerts", headers={"Authorization": f"Bearer {audit_token}"})
            if listed.status_code == 200:
                for alert in listed.json().get("alerts", []):
                    if alert.get("rule") in WANTED:
                        found.setdefault(alert["rule"], alert)
            if len(found) < len(WANTED):
                time.sleep(0.5)  # polling a server we do not control, bounded by ``timeout``
    return {
        "extraction": found.get("inference.extraction"),
        "credential_stuffing": found.get("auth.failure_burst"),
        "waited_s": round(time.monotonic() - started, 2),
    }
