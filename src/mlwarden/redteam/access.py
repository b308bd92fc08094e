"""Suite ``access``: stolen, forged, stale and over-reaching credentials, spoofed identities, path tricks.

Every probe must be refused with a 4xx problem+json; with a view of the ledger, the refusals must
show up there too (unauthenticated ones in the gateway's window summaries, the others one by one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mlwarden.redteam.findings import FindingSeverity, SuiteResult
from mlwarden.redteam.suites import SuiteOptions, register
from mlwarden.redteam.target import Reply, Target
from mlwarden.redteam.verdicts import Tally

SUITE = "access"
RECORD_WAIT_SECONDS = 20.0
"""How long refusals may take to reach the ledger (the gateway sums anonymous ones per 10 s window)."""
_SPOOFED = {
    "x-forwarded-user": {"X-Forwarded-User": "admin"},
    "x-remote-user": {"X-Remote-User": "admin", "Remote-User": "admin"},
    "x-client-cert": {"X-Client-Cert": "-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----"},
    "x-forwarded-client-cert": {"X-Forwarded-Client-Cert": "By=spiffe://mlwarden/gw;URI=spiffe://mlwarden/admin"},
    "x-ssl-client-verified": {"X-SSL-Client-Verify": "SUCCESS", "X-SSL-Client-S-DN": "CN=admin"},
    "x-spiffe-id": {"X-Spiffe-Id": "spiffe://mlwarden/admin", "X-Authenticated-Principal": "token:admin"},
}
_REMEDY_AUTH = "authenticate only from the Authorization header or a verified client certificate; refuse with 401"
_REMEDY_MODEL = "restrict tokens to their models and check the restriction on every request"
_REMEDY_SCOPE = "issue inference tokens with inference:read only, and check the scope on every route"


@dataclass(frozen=True, slots=True)
class _Probe:
    probe: str
    title: str
    method: str
    path: str
    token: str | None = None
    headers: dict[str, str] | None = None
    body: Any = None
    raw_target: bytes | None = None
    remedy: str = _REMEDY_AUTH
    anonymous: bool = True
    """Refused before anyone is authenticated (recorded in the window summary, not one by one)."""


def _altered(token: str) -> str:
    """The same token with its last character changed (a forged or corrupted secret)."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def _token_probes(target: Target, body: Any) -> list[_Probe]:
    predict = f"/v1/models/{target.model}/predict"
    good = target.tokens.inference
    probes = [
        _Probe("no-token", "predict without a token", "POST", predict, body=body),
        _Probe("malformed-token", "a malformed bearer token", "POST", predict, headers={"Authorization": "Bearer x"},
               body=body),
        _Probe("altered-token", "the inference token with one character changed", "POST", predict,
               token=_altered(good), body=body),
        _Probe("basic-scheme", "HTTP Basic credentials instead of a token", "POST", predict,
               headers={"Authorization": "Basic YWRtaW46YWRtaW4="}, body=body),
        _Probe("token-in-cookie", "the token in a cookie instead of the header", "POST", predict,
               headers={"Cookie": f"access_token={good}; token={good}"}, body=body),
    ]  # fmt: skip
    stale = {"expired": target.tokens.expired, "revoked": target.tokens.revoked}
    for state, token in stale.items():
        if token:
            probes.append(_Probe(f"{state}-token", f"an {state} token", "POST", predict, token=token, body=body))
    for name, headers in _SPOOFED.items():
        probes.append(_Probe(f"spoof-{name}", f"identity claimed in {name} headers, no token", "POST", predict,
                             headers=headers, body=body))  # fmt: skip
        probes.append(_Probe(f"spoof-{name}-admin", f"admin claimed in {name} headers, no token", "GET",
                             "/v1/admin/tokens", headers=headers))  # fmt: skip
    return probes


def _scope_probes(target: Target, options: SuiteOptions) -> list[_Probe]:
    """What the inference token must not be able to do (403), and route tricks that must not bypass that."""
    token = target.tokens.inference
    model = target.model
    dataset = options.dataset or "redteam-probe"
    mint = {"name": "redteam-escalation", "scopes": ["admin"]}

    def scoped(probe: str, title: str, method: str, path: str, **more: Any) -> _Probe:
        return _Probe(probe, title, method, path, token=token, anonymous=False, remedy=_REMEDY_SCOPE, **more)

    probes = [
        scoped("scope-list-tokens", "list tokens with an inference token", "GET", "/v1/admin/tokens"),
        scoped("scope-mint-token", "mint an admin token with an inference token", "POST", "/v1/admin/tokens",
               body=mint),
        scoped("scope-promote", "promote a version with an inference token", "POST",
               f"/v1/models/{model}/versions/1/promote", body={"stage": "production"}),
        scoped("scope-rollback", "roll the model back with an inference token", "POST",
               f"/v1/models/{model}/rollback"),
        scoped("scope-ingest", "submit a training batch with an inference token", "POST",
               f"/v1/datasets/{dataset}/batches", headers={"Content-Type": "text/csv"}, body=b"a,b\n1,2\n"),
        scoped("scope-audit", "read the ledger checkpoint with an inference token", "GET", "/v1/ledger/checkpoint"),
        scoped("method-override", "X-HTTP-Method-Override on an admin route", "POST", "/v1/admin/tokens",
               headers={"X-HTTP-Method-Override": "GET"}, body=mint),
        scoped("url-override", "X-Original-URL / X-Rewrite-URL pointing at an admin route", "GET", "/healthz",
               headers={"X-Original-URL": "/v1/admin/tokens", "X-Rewrite-URL": "/v1/admin/tokens"}),
        scoped("path-dot-segments", "dot segments from the predict route to the admin route", "GET",
               "/v1/admin/tokens", raw_target=f"/v1/models/{model}/../../admin/tokens".encode()),
        scoped("path-encoded", "percent-encoded admin path", "GET", "/v1/admin/tokens",
               raw_target=b"/v1/admin/%74okens"),
        scoped("path-double-slash", "doubled slashes in the admin path", "GET", "/v1/admin/tokens",
               raw_target=b"/v1//admin//tokens"),
        scoped("path-case", "upper-case admin path", "GET", "/v1/admin/tokens", raw_target=b"/V1/ADMIN/TOKENS"),
        scoped("method-get-predict", "GET on the predict route", "GET", f"/v1/models/{model}/predict"),
    ]  # fmt: skip
    if target.tokens.other_model:
        probes.append(_Probe("other-model-token", "a token restricted to another model", "POST",
                             f"/v1/models/{model}/predict", token=target.tokens.other_model,
                             body={"inputs": [options.sample_row() or [0.0]]}, anonymous=False,
                             remedy=_REMEDY_MODEL))  # fmt: skip
    return probes


def _send(target: Target, probe: _Probe) -> Reply:
    content = probe.body if isinstance(probe.body, bytes) else None
    return target.request(probe.method, probe.path, patient=True, token=probe.token, headers=probe.headers,
                          json_body=None if content is not None else probe.body, content=content,
                          raw_target=probe.raw_target)  # fmt: skip


def _judge_override(tally: Tally, probe: _Probe, reply: Reply) -> None:
    """``GET /healthz`` may answer; it must not answer with what the overriding header pointed at."""
    doc = reply.json()
    if reply.status == 200 and isinstance(doc, dict) and "tokens" in doc:
        tally.failed(probe.probe, probe.title, FindingSeverity.HIGH, {"reply": reply.summary()},
                     "ignore X-Original-URL / X-Rewrite-URL (or strip them at the proxy)")  # fmt: skip
    else:
        tally.passed(probe.probe, probe.title, f"answered {reply.status} for the path requested, not the header's")


def _severity(probe: _Probe) -> FindingSeverity:
    """Getting in without a valid credential, or escalating, is high; reading the checkpoint is medium."""
    return FindingSeverity.MEDIUM if probe.probe == "scope-audit" else FindingSeverity.HIGH


def _recorded(entries: list[dict[str, Any]]) -> tuple[int, int]:
    """(unauthenticated refusals summed in window summaries, authenticated refusals recorded one by one)."""
    anonymous = sum(
        int(e.get("body", {}).get("count", 0)) for e in entries if e.get("kind") == "request.rejected_summary"
    )
    known = sum(1 for e in entries if e.get("kind") in ("access.denied", "request.rejected"))
    return anonymous, known


def _check_ledger(tally: Tally, options: SuiteOptions, since: int | None, anonymous: int, known: int, *,
                  deadline: float) -> None:  # fmt: skip
    title = "every refusal is in the ledger"
    if options.ledger is None or since is None:
        tally.not_checked("recorded", title, "no audit:read token, or the gateway has no audit API")
        return
    seen = (0, 0)
    while True:
        entries = options.ledger.entries(since)
        if entries is None:
            tally.not_checked("recorded", title, "the audit API did not answer")
            return
        seen = _recorded(entries)
        if seen[0] >= anonymous and seen[1] >= known:
            tally.passed("recorded", title, f"{seen[0]} unauthenticated and {seen[1]} authenticated refusals found")
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)  # polling the ledger until the gateway's window summary lands (bounded by the deadline)
    tally.failed("recorded", title, FindingSeverity.MEDIUM,
                 {"expected": {"unauthenticated": anonymous, "authenticated": known},
                  "found": {"unauthenticated": seen[0], "authenticated": seen[1]}},
                 "record every refusal in the ledger (request.rejected, access.denied, window summaries)")  # fmt: skip


@register(SUITE)
def run_access(target: Target, options: SuiteOptions) -> SuiteResult:
    """Present every bad credential and every over-reach; each must be refused and recorded."""
    started = time.monotonic()
    tally = Tally(SUITE)
    since = options.ledger.size() if options.ledger is not None else None
    body = {"inputs": [options.sample_row() or [0.0]]}
    anonymous = known = 0
    direct_refused = True
    for probe in [*_token_probes(target, body), *_scope_probes(target, options)]:
        if probe.raw_target is not None and not direct_refused:
            tally.not_checked(probe.probe, probe.title, "the token may list tokens directly: no route trick needed")
            continue
        reply = _send(target, probe)
        if probe.probe == "url-override":
            _judge_override(tally, probe, reply)
            continue
        if probe.probe == "scope-list-tokens":
            direct_refused = reply.status >= 400
        tally.refused(probe.probe, probe.title, reply, remedy=probe.remedy, if_accepted=_severity(probe))
        if 400 <= reply.status < 500 and reply.status != 429:
            if probe.anonymous or reply.status in (404, 405):
                anonymous += 1  # refused before authentication (routing or credentials): summed per window
            else:
                known += 1
    if not target.tokens.expired:
        tally.not_checked("expired-token", "an expired token", "no expired token given (--expired-token)")
    if not target.tokens.revoked:
        tally.not_checked("revoked-token", "a revoked token", "no revoked token given (--revoked-token)")
    if not target.tokens.other_model:
        tally.not_checked("other-model-token", "a token restricted to another model", "none given")
    deadline = time.monotonic() + min(RECORD_WAIT_SECONDS, max(1.0, options.seconds - (time.monotonic() - started)))
    _check_ledger(tally, options, since, anonymous, known, deadline=deadline)
    return SuiteResult(SUITE, tally.findings, {"probes": len(tally.checks), "requests": target.requests},
                       queries=0, seconds=time.monotonic() - started, checks=tally.checks)  # fmt: skip
