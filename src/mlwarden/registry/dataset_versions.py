"""Dataset registration: content hash (or DVC md5), row count, schema fingerprint, profile."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from mlwarden.errors import ArtifactIntegrityError, InvalidInput, NotFound, TamperedRow
from mlwarden.ledger.canonical import canonical_json
from mlwarden.ledger.entry import utc_now
from mlwarden.registry.artifacts import ArtifactStore, sha256_file
from mlwarden.registry.attest import check_claims, sign_claims
from mlwarden.registry.datasets import data_format, profile, read_dvc, refuse_binary
from mlwarden.registry.models import check_name
from mlwarden.store.schema import dataset_versions
from mlwarden.workspace import Workspace

_SIGNED = ("sha256", "md5", "source", "format", "rows", "schema_fingerprint", "registrant", "label")
_SIGNED_JSON = ("profile", "lineage")


def dataset_claims(row: dict[str, Any]) -> dict[str, Any]:
    """What a dataset version's attestation signs: every column that screening, gates or lineage use.

    The contract is signed by its SHA-256, the profile and lineage by the SHA-256 of their
    canonical JSON, so a database writer cannot drop or loosen a contract, move the label,
    re-point the source or swap the reference without the signature failing on use.
    """
    try:
        claims: dict[str, Any] = {"kind": "dataset", "name": row["name"], "version": int(row["version"])}
        claims.update({column: row[column] for column in _SIGNED})
        contract = row["contract"]
        claims["contract_sha256"] = None if contract is None else hashlib.sha256(contract.encode()).hexdigest()
        for column in _SIGNED_JSON:
            value = row[column]
            claims[f"{column}_sha256"] = (
                None if value is None else hashlib.sha256(canonical_json(json.loads(value))).hexdigest()
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactIntegrityError(f"dataset:{row.get('name')}:{row.get('version')}: unreadable row ({exc})") from exc
    return claims


def check_dataset_row(ws: Workspace, row: dict[str, Any]) -> None:
    """Raise :class:`ArtifactIntegrityError` unless the row is exactly what was registered and signed."""
    what = f"dataset:{row['name']}:{row['version']}"
    check_claims(ws.signer.verifier(), dataset_claims(row), str(row["attestation"]), what)


def _checked(ws: Workspace, row: dict[str, Any]) -> None:
    """:func:`check_dataset_row` on use: a failure is recorded and refused."""
    try:
        check_dataset_row(ws, row)
    except ArtifactIntegrityError as exc:
        subject = f"dataset:{row['name']}:{row['version']}"
        ws.log.append(kind="dataset.integrity_failed", subject=subject, body={"message": exc.message},
                      principal="system:registry")  # fmt: skip
        raise TamperedRow(
            f"{subject} was changed outside mlwarden (its contract, label, source or hashes no longer match "
            "its registration signature): refused"
        ) from exc


def register_dataset(
    ws: Workspace,
    *,
    name: str,
    path: Path | None,
    principal: str,
    dvc: Path | None = None,
    label: str | None = None,
    contract: Path | None = None,
) -> dict[str, Any]:
    """Register a dataset file (profiled), or a DVC-tracked file by its ``.dvc`` md5 and path.

    ``label`` names the label column and ``contract`` the data contract kept with the dataset;
    the first version is the reference that later batches are screened against.
    """
    check_name(name, "dataset")
    contract_text = None
    if contract is not None:
        from mlwarden.data.contracts import load_contract

        load_contract(contract)  # refuse a broken contract before anything is recorded
        contract_text = contract.read_text(encoding="utf-8")
    md5: str | None = None
    sha: str | None = None
    prof: dict[str, Any] = {}
    rows: int | None = None
    fingerprint: str | None = None
    if dvc is not None:
        out = read_dvc(dvc)
        md5, source, fmt = out.md5, out.path, "dvc"
        local = (dvc.parent / out.path) if path is None else path
        if local.is_file():
            actual = hashlib.md5(local.read_bytes(), usedforsecurity=False).hexdigest()
            if actual != out.md5.removesuffix(".dir"):
                raise InvalidInput(f"{local} does not match its .dvc md5 ({out.md5}); it has {actual}")
            sha = store_dataset_file(ws, local)
            fmt = data_format(local)
            p = profile(local, fmt)
            prof, rows, fingerprint = p.to_json(), p.rows, p.schema_fingerprint
    else:
        if path is None:
            raise InvalidInput("give a dataset PATH or --from-dvc FILE.dvc")
        if not path.is_file():
            raise InvalidInput(f"dataset file {path} does not exist")
        fmt = data_format(path)
        refuse_binary(path, fmt)
        p = profile(path, fmt)
        if label is not None and label not in p.columns:
            raise InvalidInput(f"label column {label!r} is not in {path.name}")
        sha = store_dataset_file(ws, path)
        source = stored_source(ws, sha)
        prof, rows, fingerprint = p.to_json(), p.rows, p.schema_fingerprint
    with ws.log.transaction() as tx:
        if sha is not None:
            existing = tx.conn.execute(
                select(dataset_versions.c.version).where(
                    dataset_versions.c.name == name, dataset_versions.c.sha256 == sha
                )
            ).first()
            if existing is not None:
                return {
                    "name": name,
                    "version": int(existing[0]),
                    "sha256": sha,
                    "md5": md5,
                    "rows": rows,
                    "created": False,
                }
        version = next_version(tx.conn, name)
        receipt = tx.append(
            kind="dataset.registered", subject=f"dataset:{name}:{version}",
            body={"sha256": sha, "md5": md5, "source": source, "file": (path or dvc or Path(source)).name,
                  "rows": rows, "schema_fingerprint": fingerprint},
            principal=principal,
        )  # fmt: skip
        insert_version(
            tx.conn, ws, name=name, version=version, sha=sha, md5=md5, source=source, fmt=fmt, rows=rows,
            fingerprint=fingerprint, profile_json=prof, principal=principal, ledger_index=receipt.index,
            label=label, contract=contract_text,
        )  # fmt: skip
    return {"name": name, "version": version, "sha256": sha, "md5": md5, "rows": rows,
            "schema_fingerprint": fingerprint, "created": True}  # fmt: skip


def store_dataset_file(ws: Workspace, path: Path) -> str:
    """Copy a dataset file into the workspace's content-addressed store; its hex SHA-256."""
    try:
        return ArtifactStore(ws.options.paths.artifacts).put_file(path)
    except OSError as exc:
        raise InvalidInput(f"cannot store dataset file {path.name}: {exc.strerror or exc}") from exc


def stored_source(ws: Workspace, sha: str) -> str:
    """What a stored dataset version's ``source`` holds: its blob in the workspace's artifact store."""
    return str(ArtifactStore(ws.options.paths.artifacts).path_for(sha))


def dataset_file(ws: Workspace, row: dict[str, Any]) -> Path:
    """The file of a (checked) dataset version, read from the artifact store by its sha256 and re-hashed.

    Versions registered before files were stored name their original file in ``source``; that
    file is used when the store lacks the blob, and it must still hash to the registered sha256.
    """
    what = f"dataset {row['name']}:{row['version']}"
    sha = row["sha256"]
    if sha is None:
        raise InvalidInput(f"{what} has no file in the workspace (registered from DVC metadata only)")
    store = ArtifactStore(ws.options.paths.artifacts)
    if store.path_for(sha).is_file():
        return store.verified_path(sha)  # a changed blob is an integrity failure, not bad input
    legacy = Path(str(row["source"]))
    if not legacy.is_absolute() or not legacy.is_file():
        raise InvalidInput(f"{what} has no readable file: sha256:{sha} is not in the artifact store")
    if sha256_file(legacy) != sha:
        raise InvalidInput(f"the file of {what} changed since registration ({legacy})")
    return legacy


def next_version(conn: Any, name: str) -> int:
    """The number the next version of dataset ``name`` gets (inside the writing transaction)."""
    latest = conn.execute(select(func.max(dataset_versions.c.version)).where(dataset_versions.c.name == name)).scalar()
    return int(latest or 0) + 1


def insert_version(
    conn: Any,
    ws: Workspace,
    *,
    name: str,
    version: int,
    sha: str | None,
    md5: str | None,
    source: str,
    fmt: str,
    rows: int | None,
    fingerprint: str | None,
    profile_json: dict[str, Any],
    principal: str,
    ledger_index: int,
    label: str | None,
    contract: str | None,
    lineage: dict[str, Any] | None = None,
) -> None:
    """Store one signed dataset version (registration and accepted batches both come through here)."""
    values: dict[str, Any] = dict(
        name=name, version=version, sha256=sha, md5=md5, source=source, format=fmt, rows=rows,
        schema_fingerprint=fingerprint, profile=json.dumps(profile_json), registrant=principal, created=utc_now(),
        ledger_index=ledger_index, label=label, contract=contract,
        lineage=json.dumps(lineage) if lineage is not None else None,
    )  # fmt: skip
    values["attestation"] = sign_claims(ws.signer, dataset_claims(values))
    conn.execute(insert(dataset_versions).values(**values))


def list_datasets(ws: Workspace) -> list[dict[str, Any]]:
    """Every dataset version (name, version, rows, sha256, created, label, has_contract), each checked.

    ``signed`` is False for a row that no longer matches its registration signature (it is
    refused on use; ``ledger verify`` names it).
    """
    query = select(dataset_versions).order_by(dataset_versions.c.name, dataset_versions.c.version)
    with ws.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    out = []
    for row in rows:
        try:
            check_dataset_row(ws, row)
            signed = True
        except ArtifactIntegrityError:
            signed = False
        out.append(
            {
                "name": row["name"], "version": int(row["version"]), "rows": row["rows"], "sha256": row["sha256"],
                "created": row["created"], "label": row["label"], "has_contract": row["contract"] is not None,
                "signed": signed,
            }
        )  # fmt: skip
    return out


def get_dataset(ws: Workspace, name: str, version: int | None = None) -> dict[str, Any]:
    """One dataset version (newest when ``version`` is None), with its profile."""
    query = select(dataset_versions).where(dataset_versions.c.name == name)
    query = (
        query.where(dataset_versions.c.version == version)
        if version
        else query.order_by(dataset_versions.c.version.desc())
    )
    with ws.engine.connect() as conn:
        row = conn.execute(query.limit(1)).mappings().first()
    if row is None:
        raise NotFound(f"dataset {name}{':' + str(version) if version else ''} is not registered")
    out = dict(row)
    _checked(ws, out)  # every use: contract, label, source and hashes as registered
    out["profile"] = json.loads(out["profile"])
    out.pop("attestation", None)
    return out
