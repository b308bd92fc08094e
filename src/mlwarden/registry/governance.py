"""The promotion workflow: approvals, attached reports, gates in front of every stage, rollback."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, func, insert, select, update

from mlwarden.errors import ArtifactIntegrityError, GateFailed, InvalidInput, NotFound, VerificationError
from mlwarden.gates.interface import Candidate, Evaluation, GateContext, GateResult
from mlwarden.gates.runner import GatePolicy, all_passed, load_gate_policy, run_gates
from mlwarden.identity.approvers import KEY_PRINCIPAL
from mlwarden.identity.statements import SignedStatement
from mlwarden.ledger.entry import utc_now
from mlwarden.registry.artifacts import ArtifactStore
from mlwarden.registry.cards import parse_card
from mlwarden.registry.dataset_versions import check_dataset_row, dataset_file, get_dataset
from mlwarden.registry.datasets import scan
from mlwarden.registry.models import STAGES, check_row, get_version
from mlwarden.registry.signed_approvals import (
    DEFAULT_VALIDITY,
    check_or_record_refusal,
    model_expectation,
    record_refusal,
    sign_model_approval,
    verified_key_approvals,
    workspace_approvers,
)
from mlwarden.runtime.signature import InputSignature
from mlwarden.store.schema import approvals, attachments, dataset_versions, model_versions
from mlwarden.trust.follower import follower
from mlwarden.trust.projection import TrustedState, VersionFacts
from mlwarden.workspace import Workspace

MAX_REPORT_BYTES = 64 << 20
DEMOTIONS = ("candidate", "staging")
"""Stages a production version is never moved to by a promotion: it would silently stop being served."""


def approve(
    ws: Workspace,
    name: str,
    version: int,
    principal: str,
    comment: str | None = None,
    *,
    signed: SignedStatement | None = None,
) -> dict[str, Any]:
    """Record an approval (idempotent per principal).

    With ``signed``, the approver is the person whose listed key signed the statement for this
    version's sha256 (recorded as ``key:<name>``, the statement kept in the entry so anyone can
    re-verify it); ``principal`` is then who submitted it. A statement that does not verify is
    a recorded ``model.approval_refused`` and a :class:`VerificationError`.
    """
    row = get_version(ws, name, version)
    approvers = workspace_approvers(ws)
    body: dict[str, Any] = {"sha256": row["sha256"], "comment": comment, "registrant": row["registrant"]}
    if signed is not None:
        approver = check_or_record_refusal(
            ws, signed, approvers, expected=model_expectation(name, version, row["sha256"]),
            kind="model.approval_refused", subject=f"model:{name}:{version}", submitted_by=principal,
        )  # fmt: skip
        body.update(comment=signed.statement.get("comment"), statement=signed.to_json(), submitted_by=principal)
        principal = approver.principal
    with ws.log.transaction() as tx:
        exists = tx.conn.execute(
            select(approvals.c.principal).where(
                approvals.c.name == name, approvals.c.version == version, approvals.c.principal == principal
            )
        ).first()
        if exists is None:
            tx.conn.execute(
                insert(approvals).values(
                    name=name, version=version, principal=principal, created=utc_now(), comment=body["comment"]
                )
            )
            tx.append(kind="model.approved", subject=f"model:{name}:{version}", body=body, principal=principal)
    own = approvers.same_person(principal, str(row["registrant"]))
    note = "the registrant's own approval does not count for the approvals gate" if own else ""
    return {"name": name, "version": version, "approved_by": principal, "note": note}


def approve_with_key(
    ws: Workspace,
    name: str,
    version: int,
    principal: str,
    key: Ed25519PrivateKey,
    *,
    comment: str | None = None,
    valid_for: timedelta | None = DEFAULT_VALIDITY,
) -> dict[str, Any]:
    """Sign a ``model.approve`` statement with a listed approver's key and record it (see :func:`approve`)."""
    row = get_version(ws, name, version)
    try:
        signed = sign_model_approval(
            key, workspace_approvers(ws), name=name, version=version, sha256=row["sha256"],
            comment=comment, valid_for=valid_for,
        )  # fmt: skip
    except VerificationError as exc:
        subject = f"model:{name}:{version}"
        record_refusal(ws, kind="model.approval_refused", subject=subject, submitted_by=principal, reason=exc.message)
        raise
    return approve(ws, name, version, principal, signed=signed)


def attach_report(ws: Workspace, name: str, version: int, path: Path, principal: str) -> dict[str, Any]:
    """Attach a vulnerability report (pip-audit, OSV, Trivy, CycloneDX JSON) to a version."""
    from mlwarden.gates.vulnerabilities import parse_report

    get_version(ws, name, version)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read report {path}: {exc.strerror}") from exc
    if len(data) > MAX_REPORT_BYTES:
        raise InvalidInput(f"report {path} is larger than {MAX_REPORT_BYTES} bytes")
    try:
        findings = parse_report(path.name, data)
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidInput(f"report {path.name}: {exc}") from exc
    sha = ArtifactStore(ws.options.paths.artifacts).put(data)
    with ws.log.transaction() as tx:
        exists = tx.conn.execute(
            select(attachments.c.sha256).where(
                attachments.c.name == name, attachments.c.version == version, attachments.c.sha256 == sha
            )
        ).first()
        if exists is None:
            tx.conn.execute(
                insert(attachments).values(
                    name=name,
                    version=version,
                    sha256=sha,
                    kind="vulnerability-report",
                    filename=path.name,
                    created=utc_now(),
                )
            )
            tx.append(
                kind="model.report_attached",
                subject=f"model:{name}:{version}",
                body={"sha256": sha, "filename": path.name, "findings": len(findings)},
                principal=principal,
            )
    return {"name": name, "version": version, "report": path.name, "sha256": sha, "findings": len(findings)}


def _candidate(ws: Workspace, row: dict[str, Any]) -> Candidate:
    store = ArtifactStore(ws.options.paths.artifacts)
    try:
        check_row(ws, row)
        attested = True
    except ArtifactIntegrityError:  # a failing fact for the artifact_safety gate, not an error of the run
        attested = False
    path = store.path_for(row["sha256"])
    data = path.read_bytes() if path.exists() else b""
    return Candidate(
        row["name"],
        row["version"],
        row["sha256"],
        row["format"],
        data,
        f"{row['name']}.{row['format']}",
        parse_card(row["card"]),
        row["registrant"],
        attested,
        _signature(row) if attested else None,  # only a signature the registry signed names the columns
    )


def _signature(row: dict[str, Any]) -> InputSignature | None:
    text = row.get("input_signature")
    return InputSignature.from_json(json.loads(text)) if text else None


def _evaluation(ws: Workspace, policy: GatePolicy, stage: str, eval_path: Path | None) -> Evaluation | None:
    if eval_path is not None:
        return evaluation_from_file(eval_path)
    for gate in ("performance", "fairness"):
        name = policy.settings.get(gate, {}).get("dataset")
        if name and gate in policy.gates_for(stage):
            return _stored_evaluation(ws, get_dataset(ws, str(name)))
    return None


def _stored_evaluation(ws: Workspace, ds: dict[str, Any]) -> Evaluation:
    """A registered dataset as evaluation data: read from the workspace's artifact store, re-hashed."""
    import polars as pl

    path = dataset_file(ws, ds)
    try:
        frame = scan(path, str(ds["format"])).collect()
    except pl.exceptions.PolarsError as exc:
        raise InvalidInput(f"dataset {ds['name']}:{ds['version']} cannot be read: {str(exc).splitlines()[0]}") from exc
    return Evaluation(frame, str(ds["sha256"]), str(ds["source"]))


def evaluation_from_file(path: Path, expected_sha: str | None = None) -> Evaluation:
    from mlwarden.registry.artifacts import sha256_file
    from mlwarden.registry.datasets import data_format

    if not path.is_file():
        raise InvalidInput(f"evaluation data {path} does not exist")
    fmt = data_format(path)
    sha = sha256_file(path)
    if expected_sha is not None and sha != expected_sha:
        raise InvalidInput(f"evaluation data {path} changed since it was registered (sha256 {sha})")
    try:
        frame = scan(path, fmt).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:  # empty, ragged, not UTF-8, not Parquet...
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"evaluation data {path} cannot be read as {fmt}: {first}") from exc
    if frame.height == 0:
        raise InvalidInput(f"evaluation data {path} has no rows")
    return Evaluation(frame, sha, str(path))


def gate_context(
    ws: Workspace, name: str, version: int, policy: GatePolicy, stage: str, eval_path: Path | None = None
) -> GateContext:
    """Gather the evidence the stage's gates look at."""
    row = get_version(ws, name, version)
    state = follower(ws).refresh()
    facts = _facts(state, row)
    reports = [(filename, sha) for sha, filename in facts.reports.items()]  # from model.report_attached entries
    with ws.engine.connect() as conn:
        known: dict[str, set[str]] = {}
        for ds in conn.execute(select(dataset_versions)).mappings():
            try:
                check_dataset_row(ws, dict(ds))
            except ArtifactIntegrityError:
                continue  # a row nobody signed is no evidence of lineage (``ledger verify`` names it)
            known.setdefault(ds["name"], set()).add(ds["sha256"])
    approvers = list(facts.approvals)  # from verified model.approved entries, never from rows
    current = state.production(name)
    prod = (current.version,) if current is not None and current.version != version else None
    signed = verified_key_approvals(
        ws, policy.approvers, name=name, version=version, sha256=row["sha256"], principals=approvers
    )
    approvers = [p for p in approvers if not p.startswith(KEY_PRINCIPAL) or p in signed]
    store = ArtifactStore(ws.options.paths.artifacts)
    ctx = GateContext(
        candidate=_candidate(ws, row),
        now=datetime.now(UTC),
        evaluation=_evaluation(ws, policy, stage, eval_path),
        production=_candidate(ws, get_version(ws, name, int(prod[0]))) if prod else None,
        known_datasets=known,
        reports=[(fn, store.read(sha), sha) for fn, sha in reports],
        approvals=approvers,
        waivers=policy.waivers,
        persons={p: policy.approvers.person_of(p) for p in [*approvers, str(row["registrant"])]},
        redteam_runs=_redteam_runs(ws, name) if "redteam" in policy.gates_for(stage) else [],
    )
    return ctx


def _redteam_runs(ws: Workspace, name: str) -> list[dict[str, Any]]:
    """``redteam.run`` entries about ``name``, each proven against the signed head (newest 50)."""
    from mlwarden.redteam.kinds import REDTEAM_RUN

    found = ws.log.find(REDTEAM_RUN, f"model:{name}:", limit=50)
    return [ws.log.verified_entry(e.index)[0].to_json() for e in found]


def _facts(state: TrustedState, row: dict[str, Any]) -> VersionFacts:
    """The ledger's facts of a version; its row must name the same bytes and registrant."""
    facts = state.version(row["name"], int(row["version"]))
    subject = f"model:{row['name']}:{row['version']}"
    if facts is None:
        raise ArtifactIntegrityError(f"{subject}: no model.registered entry in the ledger backs this row")
    if facts.sha256 != row["sha256"] or facts.registrant != row["registrant"]:
        raise ArtifactIntegrityError(f"{subject}: the row disagrees with ledger entry {facts.registered_index}")
    return facts


def promote(
    ws: Workspace,
    name: str,
    version: int,
    stage: str,
    principal: str,
    *,
    eval_path: Path | None = None,
    policy_path: Path | None = None,
    kind: str = "model.promoted",
) -> dict[str, Any]:
    """Run the stage's gates; promote only if all pass. Gate runs, refusals and promotions are recorded.

    Nothing is recorded before the request is known good: the stage must exist, the version
    must be registered, and a production version is never moved down to ``candidate`` or
    ``staging`` (that would take it out of service silently); ``archive`` withdraws it, or
    another version's promotion to production replaces it.
    ``kind`` is ``model.rolled_back`` when a rollback asks: the same gates, today's policy.
    """
    check_stage_change(ws, name, version, stage)
    policy = load_gate_policy(policy_path or ws.options.paths.policy)
    gates = policy.gates_for(stage)
    if stage == "production" and not gates:
        raise InvalidInput("the policy names no gates for production: refusing to promote without evidence")
    results = run_gates(policy, stage, gate_context(ws, name, version, policy, stage, eval_path)) if gates else []
    passed = all_passed(results)
    summary = {"stage": stage, "passed": passed, "results": [r.to_json() for r in results]}
    run = ws.log.append(kind="gate.run", subject=f"model:{name}:{version}", body=summary, principal=principal)
    if not passed:
        ws.log.append(
            kind="model.promotion_refused",
            subject=f"model:{name}:{version}",
            body={"to": stage, "gate_run": run.index, "failed": [r.gate for r in results if r.status != "pass"]},
            principal=principal,
        )
        raise GateFailed(gate_table_line(results), results=list(results))
    return set_stage(
        ws, name, version, stage, principal, gates={"passed": True, "gate_run": run.index, "gates": gates}, kind=kind
    )


def check_stage_change(ws: Workspace, name: str, version: int, stage: str) -> None:
    """Refuse, recording nothing, a move to an unknown stage, of an unknown version, or out of production.

    The served version is the ledger's (not the row's): a row edited to say "production"
    neither blocks nor allows anything here.
    """
    if stage not in STAGES:
        raise InvalidInput(f"stage {stage!r} is not one of {', '.join(STAGES)}")
    get_version(ws, name, version)
    serving = follower(ws).refresh().production(name)
    if serving is not None and serving.version == version and stage in DEMOTIONS:
        raise InvalidInput(
            f"model {name}:{version} is in production: moving it to {stage} would stop serving {name}; "
            f"promote another version to production (which replaces it), or run `mlwarden model archive "
            f"{name} {version}` to withdraw it"
        )


def approve_and_promote(
    ws: Workspace, name: str, version: int, *, approver: str, stage: str = "production"
) -> dict[str, Any]:
    """Second-person approval, then the gated promotion (the path every served model takes)."""
    approve(ws, name, version, approver)
    return promote(ws, name, version, stage, approver)


def gate_table_line(results: list[GateResult]) -> str:
    failed = [r for r in results if r.status != "pass"]
    return "promotion refused: " + "; ".join(f"{r.gate} {r.status}: {r.message}" for r in failed)


def set_stage(
    ws: Workspace,
    name: str,
    version: int,
    stage: str,
    principal: str,
    *,
    gates: dict[str, Any] | None,
    kind: str = "model.promoted",
) -> dict[str, Any]:
    """Change the stage and record it; a new production version archives the previous one."""
    row = get_version(ws, name, version)
    facts = follower(ws).refresh().version(name, version)
    with ws.log.transaction() as tx:
        previous = _archive_production(tx.conn, name, version) if stage == "production" else None
        tx.conn.execute(
            update(model_versions)
            .where(model_versions.c.name == name, model_versions.c.version == version)
            .values(stage=stage)
        )
        receipt = tx.append(
            kind=kind,
            subject=f"model:{name}:{version}",
            body={
                "from": facts.stage if facts else row["stage"],
                "to": stage,
                "sha256": row["sha256"],
                "replaced": previous,
                "gates": gates,
            },
            principal=principal,
        )
    return {
        "name": name,
        "version": version,
        "stage": stage,
        "previous_stage": row["stage"],
        "replaced_production": previous,
        "ledger_index": receipt.index,
    }


def _archive_production(conn: Connection, name: str, version: int) -> int | None:
    """Archive every other row of ``name`` marked production; return the one it replaced.

    Read inside the write transaction, never from a state read before it: two promotions
    that both saw the same production version would otherwise leave two production rows,
    while the ledger (folded in commit order) archives the first.
    """
    others = (
        model_versions.c.name == name,
        model_versions.c.stage == "production",
        model_versions.c.version != version,
    )
    replaced = conn.execute(select(func.max(model_versions.c.version)).where(*others)).scalar()
    conn.execute(update(model_versions).where(*others).values(stage="archived"))
    return None if replaced is None else int(replaced)


def rollback(ws: Workspace, name: str, principal: str, *, eval_path: Path | None = None) -> dict[str, Any]:
    """Back to the version that production replaced most recently, through today's production gates.

    The target comes from the verified ledger state (the last production change's
    ``replaced``), and its old gate result is never reused: a version withdrawn since,
    or one the policy has since been tightened against, is refused like any promotion.
    """
    model = follower(ws).refresh().models.get(name)
    if model is None or model.replaced is None:
        raise NotFound(f"model {name} has no earlier production version to roll back to")
    return promote(ws, name, model.replaced, "production", principal, eval_path=eval_path, kind="model.rolled_back")


def stage_drift(ws: Workspace) -> list[dict[str, Any]]:
    """Versions whose row disagrees with the ledger: stage, or a signature that does not verify."""
    from mlwarden.trust.audit import model_rows

    return [f.to_json() for f in model_rows(ws, follower(ws).refresh())]


def report_drift(ws: Workspace, principal: str) -> list[dict[str, Any]]:
    """Find stage drift and record each as an alert-worthy entry."""
    drift = stage_drift(ws)
    for item in drift:
        ws.log.append(kind="model.stage_tampered", subject=str(item["row"]), body=item, principal=principal)
    return drift


def set_alias(ws: Workspace, name: str, alias: str, version: int, principal: str) -> dict[str, Any]:
    """Point ``alias`` at a version (recorded); aliases never bypass the gates: only stages decide serving."""
    from mlwarden.registry.models import check_alias
    from mlwarden.store.schema import model_aliases

    check_alias(alias)
    row = get_version(ws, name, version)
    with ws.log.transaction() as tx:
        previous = tx.conn.execute(
            select(model_aliases.c.version).where(model_aliases.c.name == name, model_aliases.c.alias == alias)
        ).first()
        if previous is None:
            tx.conn.execute(insert(model_aliases).values(name=name, alias=alias, version=version, updated=utc_now()))
        else:
            tx.conn.execute(
                update(model_aliases)
                .where(model_aliases.c.name == name, model_aliases.c.alias == alias)
                .values(version=version, updated=utc_now())
            )
        receipt = tx.append(
            kind="model.alias_set",
            subject=f"model:{name}:{version}",
            body={"alias": alias, "sha256": row["sha256"], "previous": None if previous is None else int(previous[0])},
            principal=principal,
        )
    return {"name": name, "alias": alias, "version": version, "ledger_index": receipt.index}
