"""A reference's fitted screening detectors, kept in the workspace once per dataset version.

The detectors are stored in the artifact store by the SHA-256 of their bytes (a plain-array
file, see ``detector_file``). The row of ``screening_detectors`` that names that hash for a
dataset version carries a signature, under the workspace key, over the hash and what the
detectors were fitted from: the dataset version, its signed reference sha256, its label, its
key columns and the file format. On use the row's signature is checked against the (already
verified) dataset version, and the blob is re-hashed before it is parsed: a database writer
who re-points the row, or anyone who swaps the file, gets the detectors refused (recorded as
``dataset.detectors_refused``) and refitted from the verified reference, never used.
Fitted detectors are stored in the transaction that records the batch's outcome (``keep``),
with a ``dataset.detectors_fitted`` entry naming their hash.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import polars as pl
from sqlalchemy import delete, insert, select

from mlwarden.data.detector_file import FORMAT, from_bytes, to_bytes
from mlwarden.data.fitted_reference import FittedReference, fit_reference
from mlwarden.errors import ArtifactIntegrityError, InvalidInput, NotFound
from mlwarden.ledger.entry import utc_now
from mlwarden.ledger.log import LedgerTransaction
from mlwarden.registry.artifacts import ArtifactStore
from mlwarden.registry.attest import check_claims, sign_claims
from mlwarden.store.schema import screening_detectors
from mlwarden.workspace import Workspace

PRINCIPAL = "system:screening"


def detector_claims(ref: dict[str, Any], keys: Collection[str], detectors_sha256: str) -> dict[str, Any]:
    """What a stored detectors row's signature covers."""
    return {
        "kind": "screening_detectors", "format": FORMAT, "dataset": str(ref["name"]), "version": int(ref["version"]),
        "reference_sha256": ref["sha256"], "label": ref.get("label"), "keys": sorted(keys),
        "detectors_sha256": detectors_sha256,
    }  # fmt: skip


@dataclass(frozen=True, slots=True)
class ReferenceDetectors:
    """The detectors screening uses, and whether they were fitted now (then ``keep`` stores them)."""

    fitted: FittedReference
    ref: dict[str, Any]
    keys: tuple[str, ...]
    fit_seconds: float | None = None
    """None when the kept detectors were used."""


def detectors_for(
    ws: Workspace, ref: dict[str, Any], reference: Callable[[], pl.DataFrame], *, keys: Collection[str] = ()
) -> ReferenceDetectors:
    """The detectors of dataset version ``ref`` (a row checked by ``get_dataset``): the kept ones when authentic.

    Otherwise they are fitted from ``reference`` (called only then) and not yet stored: the
    caller passes them to :func:`keep` inside the transaction that records its outcome, so a
    command that fails leaves nothing behind.
    """
    cached = _load(ws, ref, keys)
    if cached is not None:
        return ReferenceDetectors(cached, ref, tuple(keys))
    start = time.perf_counter()
    fitted = fit_reference(reference(), label=ref.get("label"), keys=keys)
    return ReferenceDetectors(fitted, ref, tuple(keys), time.perf_counter() - start)


def keep(tx: LedgerTransaction, ws: Workspace, detectors: ReferenceDetectors) -> None:
    """Store freshly fitted detectors (no-op for kept ones): the blob by hash, the signed row, a ledger entry."""
    if detectors.fit_seconds is None:
        return
    ref = detectors.ref
    sha = ArtifactStore(ws.options.paths.artifacts).put(to_bytes(detectors.fitted))
    claims = detector_claims(ref, detectors.keys, sha)
    where = (screening_detectors.c.dataset == ref["name"], screening_detectors.c.version == int(ref["version"]))
    tx.append(kind="dataset.detectors_fitted", subject=_subject(ref), principal=PRINCIPAL,
              body={"detectors_sha256": sha, "reference_sha256": ref["sha256"], "format": FORMAT,
                    "fit_seconds": round(detectors.fit_seconds, 3)})  # fmt: skip
    tx.conn.execute(delete(screening_detectors).where(*where))
    tx.conn.execute(
        insert(screening_detectors).values(
            dataset=ref["name"],
            version=int(ref["version"]),
            format=FORMAT,
            reference_sha256=ref["sha256"],
            detectors_sha256=sha,
            created=utc_now(),
            attestation=sign_claims(ws.signer, claims),
        )
    )


def _subject(ref: dict[str, Any]) -> str:
    return f"dataset:{ref['name']}:{ref['version']}"


def _load(ws: Workspace, ref: dict[str, Any], keys: Collection[str]) -> FittedReference | None:
    query = select(screening_detectors).where(
        screening_detectors.c.dataset == ref["name"], screening_detectors.c.version == int(ref["version"])
    )
    with ws.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    if row is None or row["format"] != FORMAT:
        return None  # none kept yet, or of an older format: fit anew
    what = f"screening detectors of {_subject(ref)}"
    try:
        sha = str(row["detectors_sha256"])
        check_claims(ws.signer.verifier(), detector_claims(ref, keys, sha), str(row["attestation"]), what)
        return from_bytes(ArtifactStore(ws.options.paths.artifacts).read(sha), what)  # re-hashed, then parsed
    except (ArtifactIntegrityError, NotFound, InvalidInput) as exc:
        message = getattr(exc, "message", str(exc))
        ws.log.append(kind="dataset.detectors_refused", subject=_subject(ref),
                      body={"message": message, "detectors_sha256": str(row["detectors_sha256"])[:64]},
                      principal=PRINCIPAL)  # fmt: skip
        return None
