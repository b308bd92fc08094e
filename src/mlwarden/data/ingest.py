"""Ingesting a batch: contract, then screening against the reference; accepted or quarantined, never merged silently."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert, select, update

from mlwarden.data.batch_checks import check_finite, check_header
from mlwarden.data.batch_rows import batch_ref
from mlwarden.data.batch_sealing import SealedBatchRows, seal_batch_rows, store_batch_rows
from mlwarden.data.check import check_frame
from mlwarden.data.contracts import parse_contract
from mlwarden.data.detector_cache import ReferenceDetectors, detectors_for, keep
from mlwarden.data.evidence import quarantine_evidence
from mlwarden.data.personal_columns import PersonalSplit, split_personal, write_clear
from mlwarden.data.redaction import refuse_identifiers, shown_file_name, shown_message
from mlwarden.data.screen import CHUNK_ROWS, ScreenReport, screen_against
from mlwarden.errors import InvalidInput, NotFound, PolicyDenied, VerificationError
from mlwarden.identity.approvers import load_approvers
from mlwarden.identity.statements import DATA_RELEASE, SignedStatement, new_statement, sign_statement, signer_of
from mlwarden.ledger.entry import utc_now
from mlwarden.registry.artifacts import ArtifactStore
from mlwarden.registry.dataset_versions import (
    dataset_file,
    get_dataset,
    insert_version,
    next_version,
    store_dataset_file,
    stored_source,
)
from mlwarden.registry.datasets import DatasetProfile, data_format, profile, profile_frame, scan
from mlwarden.registry.signed_approvals import check_or_record_refusal, record_refusal
from mlwarden.store.schema import batches
from mlwarden.trust.follower import follower
from mlwarden.workspace import Workspace

MAX_BATCH_BYTES = 2 << 30


class _Reference:
    """The reference dataset version (its row checked, its blob re-hashed); the table is read only when needed."""

    def __init__(self, ws: Workspace, dataset: str) -> None:
        self.row = get_dataset(ws, dataset, 1)
        self._source = dataset_file(ws, self.row)  # the stored blob, re-hashed
        self._lazy = scan(self._source, str(self.row["format"]))
        self._frame: pl.DataFrame | None = None
        self.schema = self._lazy.collect_schema()

    def frame(self) -> pl.DataFrame:
        if self._frame is None:
            self._frame = self._lazy.collect()
        return self._frame


def _read_batch(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise InvalidInput(f"batch file {path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise InvalidInput(f"batch file {path} is empty")
    if size > MAX_BATCH_BYTES:
        raise InvalidInput(f"batch file {path} is larger than {MAX_BATCH_BYTES} bytes")
    fmt = data_format(path)
    with path.open("rb") as handle:
        if fmt != "parquet" and b"\x00" in handle.read(4096):
            raise InvalidInput(f"batch file {path} is binary, not {fmt}")
    check_header(path, fmt)
    try:
        lazy = scan(path, fmt)
        width = len(lazy.collect_schema())
        if width > 10_000:
            raise InvalidInput(f"batch file {path} has {width} columns; the limit is 10,000")
        frame = lazy.collect()
    except pl.exceptions.PolarsError as exc:
        raise InvalidInput(f"batch file {path} cannot be read as {fmt}: {shown_message(str(exc))}") from exc
    if frame.width > 10_000:
        raise InvalidInput(f"batch file {path} has {frame.width} columns; the limit is 10,000")
    if frame.height == 0:
        raise InvalidInput(f"batch file {path} has no rows")
    check_finite(frame)
    return frame


@dataclass(frozen=True, slots=True)
class ScreenedBatch:
    """A batch read and screened: its rows, the report, the reference version, the detectors used."""

    batch: pl.DataFrame
    report: ScreenReport
    ref: dict[str, Any]
    detectors: ReferenceDetectors
    pii_columns: tuple[str, ...] = ()


def screen_batch(ws: Workspace, dataset: str, path: Path, *, chunk_rows: int = CHUNK_ROWS) -> ScreenedBatch:
    """Contract and screening for one batch file (records nothing).

    The reference's detectors come from the workspace when kept for this dataset version and
    authentic, else they are fitted (and kept when the batch is recorded, see ``detector_cache``).
    """
    reference = _Reference(ws, dataset)
    ref, columns = reference.row, list(reference.schema.names())
    batch = _read_batch(path)
    missing = [c for c in columns if c not in batch.columns]
    if missing:
        raise InvalidInput(f"batch lacks column(s) of {dataset}: {', '.join(missing[:10])}")
    mixed = [c for c, t in reference.schema.items() if t.is_numeric() and not batch.schema[c].is_numeric()]
    if mixed:
        raise InvalidInput(f"batch column(s) {', '.join(mixed[:10])} hold non-numbers where {dataset} has numbers")
    contract = parse_contract(ref["contract"], source=f"contract of {dataset}") if ref.get("contract") else None
    limits = {c.name: c.max_drift for c in contract.columns if c.max_drift is not None} if contract else {}
    pii = contract.pii_columns if contract else ()
    keys = (*contract.key_columns, *pii) if contract else ()  # personal columns are never screened: see docs
    detectors = detectors_for(ws, ref, reference.frame, keys=keys)
    report = screen_against(batch.select(columns), detectors.fitted, max_drift=limits, keys=keys, chunk_rows=chunk_rows)
    if report.reasons:
        report.measured["evidence"] = quarantine_evidence(
            batch.select(columns), reference.frame(), report, label=ref.get("label"), keys=keys
        )
    if contract is not None:
        contract_report = check_frame(batch.lazy(), contract)
        for broken in contract_report.broken:
            report.reasons.insert(
                0,
                f"contract: {broken.rule} on {broken.column or 'table'}: {broken.failing_rows} row(s), {broken.detail}",
            )
            rows = [int(e["row"]) for e in broken.examples if "row" in e]
            if rows:
                report.flagged.setdefault("contract", []).extend(rows)
    return ScreenedBatch(batch, report, ref, detectors, pii)


def _new_version(
    conn: Any,
    ws: Workspace,
    dataset: str,
    sha: str,
    source: str,
    path_fmt: str,
    prof: DatasetProfile,
    principal: str,
    lineage: dict[str, Any],
    ledger_index: int,
    ref: dict[str, Any],
) -> int:
    version = next_version(conn, dataset)
    insert_version(
        conn, ws, name=dataset, version=version, sha=sha, md5=None, source=source, fmt=path_fmt, rows=prof.rows,
        fingerprint=prof.schema_fingerprint, profile_json=prof.to_json(), principal=principal,
        ledger_index=ledger_index, label=ref.get("label"), contract=ref.get("contract"), lineage=lineage,
    )  # fmt: skip
    return version


def ingest(
    ws: Workspace,
    dataset: str,
    path: Path,
    principal: str,
    *,
    report_dir: Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
    subject_column: str | None = None,
) -> dict[str, Any]:
    """Screen a batch; accept it as a new dataset version or quarantine it. Every outcome is recorded.

    With ``report_dir``, the report is written (under a temporary name) before the batch is
    recorded and moved into place after: a folder that cannot take it fails the ingestion
    with nothing recorded, so a retry never ingests the batch twice.

    Personal cells (``subject_column``, ``pii: true`` columns, identifiers in other text) are
    withheld from the stored file and sealed per row (see :mod:`mlwarden.data.batch_sealing`).
    """
    from mlwarden.subjects.privacy_policy import load_privacy_policy

    screened = screen_batch(ws, dataset, path, chunk_rows=chunk_rows)
    _batch, report = screened.batch, screened.report
    if subject_column is not None and subject_column == screened.ref.get("label"):
        raise InvalidInput(f"the subject column cannot be {dataset}'s label column {subject_column!r}")
    split = split_personal(
        _batch,
        subject_column=subject_column,
        pii_columns=screened.pii_columns,
        free_text=load_privacy_policy(ws.options.paths.policy).free_text,
    )
    batch_id = secrets.token_hex(8)
    staged = None
    if report_dir is not None:
        summary = {
            "batch": batch_id, "dataset": dataset, "status": "quarantined" if report.reasons else "accepted",
            "reasons": report.reasons, "flagged_rows": report.flagged_rows, "rows": _batch.height,
            "evidence": report.measured.get("evidence", {}),
        }  # fmt: skip
        staged = _stage_report(summary, report.drift, split.clear, report_dir)
    try:
        outcome = _record_batch(ws, dataset, path, principal, screened, batch_id, split)
    except BaseException:
        if staged is not None:
            shutil.rmtree(staged.parent, ignore_errors=True)
        raise
    if report_dir is not None and staged is not None:
        outcome["report"] = str(_publish_report(staged, report_dir))
    return outcome


def _stage_report(outcome: dict[str, Any], drift: Any, batch: pl.DataFrame, folder: Path) -> Path:
    """Write the batch report into a fresh hidden folder inside ``folder``; return its path."""
    from mlwarden.data.report import write_report

    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder, prefix=".staging-"))
    except OSError as exc:
        raise InvalidInput(f"cannot write the batch report to {folder}: {exc.strerror or exc}") from exc
    try:
        return write_report(outcome, drift, batch, staging)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            raise InvalidInput(f"cannot write the batch report to {folder}: {exc.strerror or exc}") from exc
        raise


def _publish_report(staged: Path, folder: Path) -> Path:
    """Move a staged report into ``folder`` (a rename on the same file system); where it stays if that fails."""
    target = folder / staged.name
    try:
        os.replace(staged, target)
    except OSError:
        return staged  # the batch is recorded; its report is still readable where it was staged
    shutil.rmtree(staged.parent, ignore_errors=True)
    return target


def _record_batch(
    ws: Workspace,
    dataset: str,
    path: Path,
    principal: str,
    screened: ScreenedBatch,
    batch_id: str,
    split: PersonalSplit,
) -> dict[str, Any]:
    """Store the batch's bytes and record it: a new dataset version when accepted, else quarantined.

    Detectors fitted for this screening are kept in the same transaction. When the batch holds
    personal cells, the stored file is the clear frame and the cells are sealed per row.
    """
    _batch, report, ref = screened.batch, screened.report, screened.ref
    sealed: SealedBatchRows | None = None
    if split.changed:
        with tempfile.TemporaryDirectory(prefix="mlwarden-clear-") as tmp:
            sha = store_dataset_file(ws, write_clear(split.clear, path, Path(tmp)))
        sealed = seal_batch_rows(ws, batch_id, split, now=datetime.now(UTC))
    else:
        sha = store_dataset_file(ws, path)  # kept by content hash: the caller's file (or upload) may go away
    status = "quarantined" if report.reasons else "accepted"
    flagged = report.flagged_rows
    body: dict[str, Any] = {
        "batch": batch_id,
        "file": shown_file_name(path.name),
        "sha256": sha,
        "rows": _batch.height,
        "status": status,
        "reasons": report.reasons,
        "flagged_rows": flagged[:1000],
        "flagged_by_check": {k: len(v) for k, v in report.flagged.items()},
        "drift": report.drift,
    }
    if sealed is not None:
        body["sealed"] = sealed.body()
    version = None
    with ws.log.transaction() as tx:
        keep(tx, ws, screened.detectors)
        receipt = tx.append(
            kind=f"data.batch_{status}", subject=f"dataset:{dataset}", body=body, principal=principal,
            refs=(batch_ref(batch_id),) if sealed is not None else (),
        )  # fmt: skip
        if sealed is not None:
            store_batch_rows(tx.conn, batch_id, sealed)
        if status == "accepted":
            lineage = {"parent_version": _latest(tx.conn, dataset), "batch": batch_id}
            version = _new_version(
                tx.conn, ws, dataset, sha, stored_source(ws, sha), data_format(path), profile_frame(split.clear),
                principal, lineage, receipt.index, ref,
            )  # fmt: skip
        tx.conn.execute(
            insert(batches).values(
                id=batch_id,
                dataset=dataset,
                status=status,
                sha256=sha,
                filename=shown_file_name(path.name),
                rows=_batch.height,
                reasons=json.dumps(report.reasons),
                flagged=json.dumps(flagged),
                ingested_by=principal,
                created=utc_now(),
                dataset_version=version,
            )
        )
    outcome = {
        "batch": batch_id,
        "dataset": dataset,
        "status": status,
        "reasons": report.reasons,
        "flagged_rows": flagged,
        "rows": _batch.height,
        "dataset_version": version,
        "ledger_index": receipt.index,
        "evidence": report.measured.get("evidence", {}),
    }
    if sealed is not None:
        outcome["sealed"] = sealed.summary
    return outcome


def _latest(conn: Any, dataset: str) -> int:
    return next_version(conn, dataset) - 1


def release_expectation(row: Any) -> dict[str, Any]:
    """What a ``data.release`` statement must say to release this batch."""
    return {"action": DATA_RELEASE, "dataset": row["dataset"], "batch": row["id"], "sha256": row["sha256"]}


def quarantined_batch(ws: Workspace, batch_id: str) -> Any:
    """The row of a quarantined batch (else :class:`NotFound` / :class:`InvalidInput`)."""
    with ws.engine.connect() as conn:
        row = conn.execute(select(batches).where(batches.c.id == batch_id)).mappings().first()
    if row is None:
        raise NotFound(f"batch {batch_id} does not exist")
    facts = follower(ws).refresh().batches.get(batch_id)  # who ingested it and its status, from the ledger
    if facts is None or (facts.dataset, facts.sha256) != (row["dataset"], row["sha256"]):
        raise PolicyDenied(f"batch {batch_id}: no quarantine entry in the ledger matches its row; refused")
    if facts.released_by is not None or facts.rejected_by is not None or row["status"] != "quarantined":
        raise InvalidInput(f"batch {batch_id} is {row['status']}, not quarantined")
    return {**row, "ingested_by": facts.ingested_by}  # the ledger's word, not the column's


def sign_release(
    ws: Workspace, batch_id: str, key: Ed25519PrivateKey, reason: str, *, valid_for: timedelta | None
) -> SignedStatement:
    """A ``data.release`` statement for this quarantined batch, signed with a listed approver's key."""
    if not reason or not reason.strip():
        raise InvalidInput("a release needs a reason")
    refuse_identifiers(reason, "the release reason")
    row = quarantined_batch(ws, batch_id)
    approver = signer_of(key, load_approvers(ws.options.paths.policy))
    fields = {k: v for k, v in release_expectation(row).items() if k != "action"}
    return sign_statement(
        new_statement(DATA_RELEASE, approver.name, datetime.now(UTC), valid_for, reason=reason, **fields), key
    )


def release_with_key(
    ws: Workspace, batch_id: str, principal: str, key: Ed25519PrivateKey, reason: str, *, valid_for: timedelta | None
) -> dict[str, Any]:
    """Sign the release with the key and release (see :func:`release`); an unlisted key is a recorded refusal."""
    try:
        signed = sign_release(ws, batch_id, key, reason, valid_for=valid_for)
    except VerificationError as exc:
        subject = f"dataset:{quarantined_batch(ws, batch_id)['dataset']}"
        record_refusal(ws, kind="data.release_refused", subject=subject, submitted_by=principal, reason=exc.message)
        raise
    return release(ws, batch_id, principal, None, signed=signed)


def release(
    ws: Workspace, batch_id: str, principal: str, reason: str | None, *, signed: SignedStatement | None = None
) -> dict[str, Any]:
    """Release a quarantined batch into the dataset: another person than its ingester, with a reason.

    With ``signed``, the releaser is the person whose listed key signed a ``data.release``
    statement for this batch's sha256 (``key:<name>``; the reason is the signed one). Any
    identity of the ingester's own person (policy ``approvers`` accounts) is refused, recorded.
    """
    row = quarantined_batch(ws, batch_id)
    approvers = load_approvers(ws.options.paths.policy)
    subject = f"dataset:{row['dataset']}"
    extra: dict[str, Any] = {}
    if signed is not None:
        if reason is not None and reason != signed.statement["reason"]:
            raise InvalidInput("--reason differs from the reason in the signed release")
        approver = check_or_record_refusal(
            ws, signed, approvers, expected=release_expectation(row), kind="data.release_refused",
            subject=subject, submitted_by=principal,
        )  # fmt: skip
        extra = {"statement": signed.to_json(), "submitted_by": principal}
        principal, reason = approver.principal, str(signed.statement["reason"])
    if not reason or not reason.strip():
        raise InvalidInput("a release needs a reason")
    refuse_identifiers(reason, "the release reason")
    if approvers.same_person(str(row["ingested_by"]), principal):
        message = f"batch {batch_id} was ingested by {row['ingested_by']}; another person must release it"
        record_refusal(ws, kind="data.release_refused", subject=subject, submitted_by=principal, reason=message)
        raise PolicyDenied(message)
    ref = get_dataset(ws, row["dataset"], 1)
    blob = ArtifactStore(ws.options.paths.artifacts).verified_path(row["sha256"])  # re-hash before release
    fmt = data_format(Path(row["filename"]))
    prof = profile(blob, fmt)
    with ws.log.transaction() as tx:
        receipt = tx.append(
            kind="data.batch_released",
            subject=f"dataset:{row['dataset']}",
            body={"batch": batch_id, "reason": reason, "ingested_by": row["ingested_by"], **extra},
            principal=principal,
        )
        lineage = {"parent_version": _latest(tx.conn, row["dataset"]), "batch": batch_id, "released_by": principal}
        version = _new_version(
            tx.conn, ws, row["dataset"], row["sha256"], stored_source(ws, row["sha256"]), fmt, prof, principal,
            lineage, receipt.index, ref,
        )  # fmt: skip
        tx.conn.execute(
            update(batches)
            .where(batches.c.id == batch_id)
            .values(status="released", released_by=principal, release_reason=reason, dataset_version=version)
        )
    return {"batch": batch_id, "status": "released", "dataset_version": version, "ledger_index": receipt.index}
