"""Model registration, listing, lineage and safe loading; every outcome is a ledger entry."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from mlwarden.errors import ArtifactIntegrityError, InvalidInput, NotFound, UnsafeArtifact
from mlwarden.ledger.canonical import canonical_json
from mlwarden.ledger.entry import parse_json_object, utc_now
from mlwarden.registry.artifacts import ArtifactStore
from mlwarden.registry.attest import check_claims, sign_claims
from mlwarden.registry.cards import decode_card
from mlwarden.registry.names import NAME as NAME
from mlwarden.registry.names import STAGES as STAGES
from mlwarden.registry.names import check_alias as check_alias
from mlwarden.registry.names import check_name as check_name
from mlwarden.registry.sniff import ONNX, SKOPS, ArtifactFormat, detect_format
from mlwarden.runtime.interface import LoadedModel
from mlwarden.runtime.probe import probe_artifact
from mlwarden.runtime.runtime_policy import RuntimePolicy, load_runtime_policy
from mlwarden.runtime.signature import InputSignature
from mlwarden.runtime.validator import Validator
from mlwarden.store.schema import dataset_versions, model_versions
from mlwarden.workspace import Workspace

DATASET_REF = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,127})@sha256:(?P<sha>[0-9a-f]{64})", re.ASCII)
MAX_MODEL_BYTES = 2 << 30


def resolve_alias(ws: Workspace, name: str, alias: str) -> int:
    """The version an alias points at, as the verified ``model.alias_set`` entries say."""
    from mlwarden.trust.follower import follower

    facts = follower(ws).refresh().models.get(name)
    version = facts.aliases.get(alias) if facts is not None else None
    if version is None:
        raise NotFound(f"model {name} has no alias {alias!r}")
    return version


def parse_ref(ref: str, *, default_version: bool = False, ws: Workspace | None = None) -> tuple[str, int | None]:
    """``NAME:VERSION``, ``NAME@ALIAS`` (with a workspace to resolve it), or ``NAME`` when ``default_version``."""
    if "@" in ref and ws is not None:
        name, _, alias = ref.partition("@")
        check_name(name)
        return name, resolve_alias(ws, name, check_alias(alias))
    name, sep, version = ref.partition(":")
    check_name(name)
    if not sep:
        if default_version:
            return name, None
        raise InvalidInput(f"{ref!r} must be NAME:VERSION")
    if not version.isdigit() or int(version) < 1:
        raise InvalidInput(f"{ref!r}: version must be a positive integer")
    return name, int(version)


def model_claims(name: str, version: int, sha256: str, card_sha256: str) -> dict[str, Any]:
    """The identifying part of what a model version's attestation signs."""
    return {"kind": "model", "name": name, "version": version, "sha256": sha256, "card_sha256": card_sha256}


def _json_sha256(text: str | None) -> str | None:
    """SHA-256 of the canonical form of a stored JSON column (None stays None)."""
    if text is None:
        return None
    return hashlib.sha256(canonical_json(json.loads(text))).hexdigest()


def row_claims(row: dict[str, Any]) -> dict[str, Any]:
    """Everything in a version's row that anything enforces, as its attestation signs it.

    Rows are immutable after registration (the stage is not here: it comes from the
    ledger), so a signature under the workspace key checked on every use stops a database
    writer from loosening the input signature, changing the registrant (four eyes),
    the format, the card or the lineage.
    """
    try:
        return {
            **model_claims(row["name"], int(row["version"]), row["sha256"], row["card_sha256"]),
            "format": row["format"],
            "registrant": row["registrant"],
            "signature_sha256": _json_sha256(row["input_signature"]),
            "lineage_sha256": _json_sha256(row["lineage"]),
        }
    except (ValueError, TypeError) as exc:
        raise ArtifactIntegrityError(
            f"model:{row['name']}:{row['version']}: stored columns are not readable ({exc})"
        ) from exc


def check_row(ws: Workspace, row: dict[str, Any]) -> None:
    """Raise :class:`ArtifactIntegrityError` unless the row is exactly what was registered and signed."""
    subject = f"model:{row['name']}:{row['version']}"
    check_claims(ws.signer.verifier(), row_claims(row), row["attestation"], subject)
    if hashlib.sha256(str(row["card"]).encode()).hexdigest() != row["card_sha256"]:
        raise ArtifactIntegrityError(f"{subject}: the stored model card does not match its registered sha256")


def _read(path: Path, what: str, limit: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > limit:
            raise InvalidInput(f"{what} {path} is {size} bytes; the limit is {limit}")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidInput(f"{what} {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise InvalidInput(f"{what} {path} is a folder, not a file") from exc
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from exc


def _text(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded)") from exc


def _record_refusal(ws: Workspace, name: str, path: Path, sha256: str, exc: UnsafeArtifact, principal: str) -> None:
    ws.log.append(
        kind="model.refused",
        subject=f"model:{name}",
        body={
            "file": path.name,
            "sha256": sha256,
            "reason": exc.kind,
            "found": list(exc.found),
            "message": exc.message,
        },
        principal=principal,
    )


def instantiate(fmt: str, data: bytes, *, runtime: RuntimePolicy | None = None) -> LoadedModel:
    """Load served formats through their safe loaders, with what the policy's ``runtime:`` section allows
    (ONNX operator domains beyond the standard, skops types beyond the built-in list)."""
    runtime = runtime or RuntimePolicy()
    if fmt == ONNX:
        from mlwarden.runtime.onnx_model import OnnxModel

        return OnnxModel(data, allowed_domains=runtime.onnx_domains)
    if fmt == SKOPS:
        from mlwarden.runtime.skops_model import SkopsModel

        return SkopsModel(data, trust=runtime.skops)
    raise InvalidInput(f"{fmt} artifacts are recorded, not served")


@dataclass(frozen=True, slots=True)
class Registration:
    name: str
    version: int
    sha256: str
    format: str
    stage: str
    created: bool

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "format": self.format,
                "stage": self.stage, "created": self.created}  # fmt: skip


def register_model(
    ws: Workspace,
    *,
    name: str,
    path: Path,
    card_path: Path,
    principal: str,
    datasets: list[str] = (),  # type: ignore[assignment]
    code_commit: str | None = None,
    parent: str | None = None,
    signature_path: Path | None = None,
) -> Registration:
    """Register the next version of ``name``; refuse (and record) anything that can run code."""
    check_name(name)
    data = _read(path, "model file", MAX_MODEL_BYTES)

    sha = hashlib.sha256(data).hexdigest()
    runtime = load_runtime_policy(ws.options.paths.policy)
    try:
        fmt: ArtifactFormat = detect_format(data, path.name)
        if fmt.servable:  # a file that crashes the loader costs a child process, not this one
            probe_artifact(fmt.name, data, runtime=runtime, where=path.name)
        model = instantiate(fmt.name, data, runtime=runtime) if fmt.servable else None
    except UnsafeArtifact as exc:
        _record_refusal(ws, name, path, sha, exc, principal)
        raise
    card = decode_card(_read(card_path, "model card", 1 << 20), source=f"model card {card_path}")
    signature: InputSignature | None = model.signature if model else None
    if signature_path is not None:
        if signature is None:
            raise InvalidInput(f"{fmt.name} artifacts are not served, so they take no signature file")
        spec = parse_json_object(
            _text(_read(signature_path, "signature file", 1 << 20), signature_path), what="signature file"
        )
        signature = signature.narrow(spec)
    if code_commit is not None and not re.fullmatch(r"[0-9a-fA-F]{7,64}", code_commit):
        raise InvalidInput(f"code commit {code_commit!r} is not a git commit hash")
    refs = [_dataset_ref(ws, ref) for ref in datasets]
    parents = [parent] if parent else []
    for ref in parents:
        get_version(ws, *parse_ref(ref))
    ArtifactStore(ws.options.paths.artifacts).put(data)
    with ws.log.transaction() as tx:
        existing = tx.conn.execute(
            select(model_versions.c.version, model_versions.c.stage, model_versions.c.format).where(
                model_versions.c.name == name, model_versions.c.sha256 == sha
            )
        ).first()
        if existing is not None:
            return Registration(name, int(existing[0]), sha, str(existing[2]), str(existing[1]), False)
        latest = tx.conn.execute(
            select(func.max(model_versions.c.version)).where(model_versions.c.name == name)
        ).scalar()
        version = int(latest or 0) + 1
        lineage = {"datasets": refs, "code_commit": code_commit, "parents": parents}
        values: dict[str, Any] = dict(
            name=name, version=version, sha256=sha, format=fmt.name, stage="candidate", card=card.text,
            card_sha256=card.sha256, card_meta=json.dumps(card.summary()),
            input_signature=json.dumps(signature.to_json()) if signature else None,
            lineage=json.dumps(lineage), registrant=principal, created=utc_now(),
        )  # fmt: skip
        claims = row_claims(values)
        receipt = tx.append(
            kind="model.registered",
            subject=f"model:{name}:{version}",
            body={
                "sha256": sha, "format": fmt.name, "card_sha256": card.sha256,
                "signature_sha256": claims["signature_sha256"], **lineage,
            },
            principal=principal,
        )  # fmt: skip
        values.update(attestation=sign_claims(ws.signer, claims), ledger_index=receipt.index)
        tx.conn.execute(insert(model_versions).values(**values))
    return Registration(name, version, sha, fmt.name, "candidate", True)


def _dataset_ref(ws: Workspace, ref: str) -> dict[str, Any]:
    match = DATASET_REF.fullmatch(ref)
    if not match:
        raise InvalidInput(f"dataset {ref!r} must be NAME@sha256:HEX")
    with ws.engine.connect() as conn:
        row = conn.execute(
            select(dataset_versions.c.version).where(
                dataset_versions.c.name == match["name"], dataset_versions.c.sha256 == match["sha"]
            )
        ).first()
    if row is None:
        raise NotFound(f"dataset {ref} is not registered (register it with `mlwarden dataset register`)")
    return {"name": match["name"], "sha256": match["sha"], "version": int(row[0])}


def get_version(ws: Workspace, name: str, version: int | None = None) -> dict[str, Any]:
    """One model version's row (``version=None``: the newest)."""
    query = select(model_versions).where(model_versions.c.name == name)
    query = (
        query.where(model_versions.c.version == version) if version else query.order_by(model_versions.c.version.desc())
    )
    with ws.engine.connect() as conn:
        row = conn.execute(query.limit(1)).mappings().first()
    if row is None:
        what = f"{name}:{version}" if version else name
        raise NotFound(f"model {what} is not registered")
    return dict(row)


def aliases_of(ws: Workspace, name: str) -> dict[str, int]:
    """Every alias of a model and its version (from the verified ledger state)."""
    from mlwarden.trust.follower import follower

    facts = follower(ws).refresh().models.get(name)
    return dict(facts.aliases) if facts is not None else {}


def describe(row: dict[str, Any]) -> dict[str, Any]:
    """A version as users see it (``model show``)."""
    return {
        "name": row["name"], "version": row["version"], "stage": row["stage"], "format": row["format"],
        "sha256": row["sha256"], "card_sha256": row["card_sha256"], "card": json.loads(row["card_meta"]),
        "signature": json.loads(row["input_signature"]) if row["input_signature"] else None,
        "lineage": json.loads(row["lineage"]), "registrant": row["registrant"], "created": row["created"],
        "ledger_index": row["ledger_index"],
        "registration_signature": {"alg": "ed25519", "signed": ["name", "version", "sha256", "card_sha256"],
                                   "value": row["attestation"]},
    }  # fmt: skip


def list_models(ws: Workspace) -> list[dict[str, Any]]:
    """Every version, newest first within each name."""
    cols = [model_versions.c[c] for c in ("name", "version", "stage", "format", "sha256", "created")]
    with ws.engine.connect() as conn:
        rows = conn.execute(select(*cols).order_by(model_versions.c.name, model_versions.c.version.desc())).mappings()
        return [dict(r) for r in rows]


def lineage(ws: Workspace, name: str, version: int, _seen: frozenset[tuple[str, int]] = frozenset()) -> dict[str, Any]:
    """The lineage tree: datasets by hash, code commit, parents (recursively)."""
    row = get_version(ws, name, version)
    info = json.loads(row["lineage"])
    node: dict[str, Any] = {
        "model": f"{name}:{version}", "sha256": row["sha256"], "datasets": info["datasets"],
        "code_commit": info["code_commit"], "parents": [],
    }  # fmt: skip
    for ref in info["parents"]:
        pname, pversion = parse_ref(ref)
        if (pname, pversion) in _seen or pversion is None:
            continue
        node["parents"].append(lineage(ws, pname, pversion, _seen | {(name, version)}))
    return node


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A loaded version with its registry row and its compiled validator."""

    row: dict[str, Any]
    model: LoadedModel
    validator: Validator


def load_model(ws: Workspace, name: str, version: int | None, principal: str) -> ServedModel:
    """Load a version for serving: re-hash the bytes, check the attestation, re-scan, instantiate.

    Any integrity failure is recorded in the ledger and the model is not loaded.
    """
    row = get_version(ws, name, version)
    subject = f"model:{row['name']}:{row['version']}"
    try:
        check_row(ws, row)
        data = ArtifactStore(ws.options.paths.artifacts).read(row["sha256"])
        fmt = detect_format(data, subject)
        if fmt.name != row["format"]:
            raise ArtifactIntegrityError(f"{subject}: stored format {row['format']} but the bytes are {fmt.name}")
    except (ArtifactIntegrityError, UnsafeArtifact) as exc:
        ws.log.append(
            kind="model.integrity_failed", subject=subject,
            body={"sha256": row["sha256"], "message": exc.message}, principal=principal,
        )  # fmt: skip
        if isinstance(exc, UnsafeArtifact):  # a registered artifact that now scans as unsafe was tampered with
            raise ArtifactIntegrityError(f"{subject}: {exc.message}") from exc
        raise
    model = instantiate(fmt.name, data, runtime=load_runtime_policy(ws.options.paths.policy))
    if row["input_signature"]:
        model.signature = InputSignature.from_json(json.loads(row["input_signature"]))
    return ServedModel(row, model, Validator(model.signature))


def production_row(ws: Workspace, name: str) -> dict[str, Any] | None:
    """The version the database marks as production (a cache: the ledger state decides)."""
    with ws.engine.connect() as conn:
        rows = conn.execute(
            select(model_versions.c.version, model_versions.c.sha256).where(
                model_versions.c.name == name, model_versions.c.stage == "production"
            )
        ).all()
    if not rows:
        return None
    if len(rows) > 1:  # only a writer around mlwarden makes two; refuse rather than pick one
        return {"version": -1, "sha256": ""}
    return {"version": int(rows[0][0]), "sha256": str(rows[0][1])}
