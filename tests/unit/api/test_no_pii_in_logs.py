"""No clear personal data in logs or in the ledger's text: subjects, inputs and rejected values stay out."""

from __future__ import annotations

import structlog
from sqlalchemy import select

from mlwarden.store.schema import ledger_entries
from tests.unit.api.conftest import Env

SUBJECT = "jane.doe-subject-7781"
EMAIL = "jane.doe@example.org"


def test_predict_erase_and_rejections_leave_no_pii(env: Env) -> None:
    """A prediction naming a subject, a row carrying an e-mail (refused), and the subject's erasure: the captured
    structlog events and every ledger entry's text hold neither the subject id, the e-mail nor the row's values."""
    rows = env.rows(1)
    marker = repr(rows[0][0])
    with structlog.testing.capture_logs() as events:
        ok = env.client.post(
            "/v1/models/bc/predict",
            json={"inputs": rows, "subjects": [SUBJECT]},
            headers=env.headers(env.tokens["inference:read"]),
        )
        bad_row = [EMAIL, *rows[0][1:]]
        refused = env.client.post(
            "/v1/models/bc/predict",
            json={"inputs": [bad_row], "subjects": [SUBJECT]},
            headers=env.headers(env.tokens["inference:read"]),
        )
        erased = env.client.post(
            "/v1/privacy/erase",
            json={"subject": SUBJECT, "reason": "request"},
            headers=env.headers(env.tokens["privacy:erase"]),
        )
    assert ok.status_code == 200, ok.text
    assert 400 <= refused.status_code < 500, refused.text
    assert erased.status_code == 200, erased.text
    logged = repr(events)
    with env.ws.engine.connect() as conn:
        ledger = "\n".join(conn.execute(select(ledger_entries.c.entry)).scalars())
    rejected = [e for e in ledger.splitlines() if "request.rejected" in e]
    assert any("[EMAIL]" in e for e in rejected), rejected  # the refusal was recorded, masked
    for secret in (SUBJECT, EMAIL, marker):
        assert secret not in logged, secret
        assert secret not in ledger, secret
