"""Suite ``governance``: get a model into production without the gates, or a pickle into the registry.

Registers a throw-away probe model (``redteam-probe-<random>``: a two-input identity ONNX graph),
then tries to promote it without approvals and with its author's own approval, uploads pickles as
models, and (``--home`` mode only, since it writes the database the way an intruder with database
access would) marks it production behind the gates' back and asks the gateway to serve it.
"""

from __future__ import annotations

import secrets
import time

from mlwarden.redteam.findings import FindingSeverity, SuiteResult
from mlwarden.redteam.suites import SuiteOptions, register
from mlwarden.redteam.target import Reply, Target
from mlwarden.redteam.verdicts import Tally

SUITE = "governance"
PROBE_PREFIX = "redteam-probe-"
_CARD = """---
license: apache-2.0
datasets: []
metrics: [accuracy]
---
# red-team probe

## Intended use
None: registered by `mlwarden redteam` to test the promotion gates. Never serve it.

## Limitations
An identity function.

## Training data
None.

## Evaluation
None.

## Fairness
Not applicable.

## Owners
The red team.
"""
_REMEDY_APPROVALS = "require the approvals gate (four eyes) for production in policy.yaml"


HARMLESS_PICKLE = b"cbuiltins\nprint\n(Vmlwarden red team: this pickle was unpickled\ntR."
"""A protocol-0 pickle that calls ``print`` when loaded (where a malicious one would call ``os.system``).

Written out by hand: nothing in mlwarden imports ``pickle``."""


def probe_onnx() -> bytes:
    """A valid, tiny ONNX model: Y = X for X of shape (rows, 2)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 2])
    graph = helper.make_graph([helper.make_node("Identity", ["X"], ["Y"])], "redteam_probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def multipart(files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body of ``files`` (field -> (file name, bytes, content type)) and its content type."""
    boundary = "redteam" + secrets.token_hex(12)
    parts = []
    for field, (filename, data, kind) in files.items():
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                f"Content-Type: {kind}\r\n\r\n")  # fmt: skip
        parts.append(head.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _upload(target: Target, token: str, model: str, filename: str, data: bytes) -> Reply:
    body, kind = multipart({"model": (filename, data, "application/octet-stream"),
                            "card": ("card.md", _CARD.encode(), "text/markdown")})  # fmt: skip
    return target.request("POST", f"/v1/models/{model}/versions", patient=True, token=token, content=body,
                          headers={"Content-Type": kind})  # fmt: skip


def _pickles(tally: Tally, target: Target, token: str, model: str) -> None:
    data = HARMLESS_PICKLE
    for probe, filename in (("pickle-upload", "model.pkl"), ("pickle-disguised", "model.onnx")):
        reply = _upload(target, token, model, filename, data)
        tally.refused(probe, f"upload a pickle as a model ({filename})", reply,
                      remedy="refuse pickles: accept only ONNX and skops, sniffed by content, not by name")  # fmt: skip


def _gate_failed(reply: Reply, gate: str) -> bool:
    doc = reply.json()
    gates = doc.get("gates") if isinstance(doc, dict) else None
    return (
        reply.status == 409
        and isinstance(gates, list)
        and any(isinstance(g, dict) and g.get("gate") == gate and g.get("status") != "pass" for g in gates)
    )


def _promote(tally: Tally, target: Target, probe: str, title: str, model: str, version: int) -> None:
    token = target.tokens.promote
    if not token:
        tally.not_checked(probe, title, "no model:promote token given (--promote-token)")
        return
    reply = target.request("POST", f"/v1/models/{model}/versions/{version}/promote", patient=True, token=token,
                           json_body={"stage": "production"})  # fmt: skip
    if _gate_failed(reply, "approvals"):
        tally.passed(probe, title, "refused by the approvals gate (409)")
    elif reply.status == 200:
        tally.failed(probe, title, FindingSeverity.HIGH, {"reply": reply.summary(), "outcome": "promoted"},
                     _REMEDY_APPROVALS)  # fmt: skip
    elif reply.status == 409:
        tally.failed(probe, title, FindingSeverity.HIGH, {"reply": reply.summary(), "outcome": "no approvals gate"},
                     _REMEDY_APPROVALS)  # fmt: skip
    else:
        tally.refused(probe, title, reply, remedy=_REMEDY_APPROVALS)


def _self_approve(tally: Tally, target: Target, token: str, model: str, version: int) -> None:
    """The author approves their own version; the approval may be recorded, but must not count."""
    title = "promote with only the author's own approval"
    reply = target.request("POST", f"/v1/models/{model}/versions/{version}/approve", patient=True, token=token,
                           json_body={"comment": "red team: self-approval"})  # fmt: skip
    if reply.status in (401, 403):
        tally.passed("self-approval", title, f"the author's token cannot approve ({reply.status})")
        return
    _promote(tally, target, "self-approval", title, model, version)


def _outside_gates(tally: Tally, target: Target, options: SuiteOptions, model: str, version: int) -> None:
    """Mark the probe production in the database (as an intruder could) and ask the gateway to serve it."""
    title = "serve a version marked production in the database, outside the gates"
    if options.home is None:
        tally.not_checked("production-outside-gates", title, "needs database access: run with --home")
        return
    from mlwarden.redteam.intrusion import marked_production

    with marked_production(options.home, model, version) as token:
        reply = target.request("POST", f"/v1/models/{model}/predict", patient=True, token=token,
                               json_body={"inputs": [[0.5, 0.5]]})  # fmt: skip
    if reply.status == 200:
        tally.failed("production-outside-gates", title, FindingSeverity.HIGH,
                     {"reply": reply.summary(), "outcome": "served"},
                     "serve only what a gated promotion in the verified ledger put in production")  # fmt: skip
    elif reply.status >= 500 and reply.status != 503:
        tally.refused("production-outside-gates", title, reply, remedy="refuse cleanly")
    else:
        tally.passed("production-outside-gates", title, f"not served ({reply.status})")


@register(SUITE)
def run_governance(target: Target, options: SuiteOptions) -> SuiteResult:
    """Try each way around the promotion gates once."""
    started = time.monotonic()
    tally = Tally(SUITE)
    model = PROBE_PREFIX + secrets.token_hex(4)
    author = target.tokens.model_write
    probes = ("pickle-upload", "pickle-disguised", "promote-without-approvals", "self-approval",
              "production-outside-gates")  # fmt: skip
    if not author:
        for probe in probes:
            tally.not_checked(probe, probe.replace("-", " "), "no model:write token given (--model-write-token)")
        return SuiteResult(SUITE, [], {}, seconds=time.monotonic() - started, checks=tally.checks)
    _pickles(tally, target, author, model)
    reply = _upload(target, author, model, "probe.onnx", probe_onnx())
    doc = reply.json()
    version = doc.get("version") if isinstance(doc, dict) else None
    if reply.status != 201 or not isinstance(version, int):
        for probe in probes[2:]:
            tally.not_checked(probe, probe.replace("-", " "), f"the probe model was not registered ({reply.status})")
    else:
        _promote(tally, target, "promote-without-approvals", "promote without any approval", model, version)
        _self_approve(tally, target, author, model, version)
        _outside_gates(tally, target, options, model, version)
    return SuiteResult(SUITE, tally.findings, {"probe_model": model}, queries=0,
                       seconds=time.monotonic() - started, checks=tally.checks)  # fmt: skip
