"""Verify a subject-access export offline: no database, no payload keys; only the key the reader pins.

Imports no storage (an auditor or the data subject runs it anywhere): the signed checkpoint is
opened with the pinned key, each entry's leaf is placed under its root by its inclusion proof,
and each payload (value and salt) is checked against the commitment its entry holds; a batch
row's commitment is placed under its batch entry's ``commitments_root`` by the row's audit path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlwarden.errors import InvalidInput, MlwardenError, VerificationError
from mlwarden.ledger import merkle
from mlwarden.ledger.canonical import canonical_json
from mlwarden.ledger.entry import Entry, parse_json_object
from mlwarden.ledger.notes import Checkpoint, NoteVerifier
from mlwarden.ledger.pins import KeyPin
from mlwarden.privacy.commitments import Commitment, commitment_leaf, commitment_of

FORMAT = "mlwarden-subject-export-v1"
FIELDS = ("inputs", "outputs")


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What a verified export proved: how many decisions, under which checkpoint size."""

    decisions: int
    checkpoint_size: int
    key_fingerprint: str
    feedback: int = 0
    batch_rows: int = 0

    def to_json(self) -> dict[str, Any]:
        """The report as JSON."""
        return {
            "ok": True,
            "decisions": self.decisions,
            "feedback": self.feedback,
            "batch_rows": self.batch_rows,
            "checkpoint_size": self.checkpoint_size,
            "key_fingerprint": self.key_fingerprint,
        }


def _offered(document: dict[str, Any]) -> NoteVerifier | None:
    try:
        return NoteVerifier.parse(str(document.get("public_key", "")))
    except MlwardenError:
        return None


def _proven_entry(row: Any, checkpoint: Checkpoint, what: str, position: int) -> tuple[dict[str, Any], Entry]:
    """An exported row's entry, proven included under ``checkpoint`` (the row, then the parsed entry)."""
    if not isinstance(row, dict):
        raise VerificationError(f"{what} {position} is not an object")
    index, text, path = row.get("ledger_index"), row.get("entry"), row.get("inclusion_proof")
    if not isinstance(index, int) or not isinstance(text, str) or not isinstance(path, list):
        raise VerificationError(f"{what} {position} lacks its ledger index, entry or inclusion proof")
    try:
        proof = [bytes.fromhex(str(h)) for h in path]
    except ValueError as exc:
        raise VerificationError(f"entry {index}: inclusion proof is not hex") from exc
    merkle.verify_inclusion(merkle.leaf_hash(text.encode()), index, checkpoint.size, proof, checkpoint.root)
    return row, Entry.parse(text)


def _check_decision(found: Any, checkpoint: Checkpoint, position: int) -> None:
    row, entry = _proven_entry(found, checkpoint, "decision", position)
    index = row["ledger_index"]
    ids = entry.body.get("decision_ids")
    decision = row.get("decision_id")
    if entry.index != index or not isinstance(ids, list) or decision not in ids:
        raise VerificationError(f"entry {index} does not record decision {decision}")
    at = ids.index(decision)
    for field in FIELDS:
        try:
            expected = Commitment.parse(entry.body[f"{field}_commitments"][at])
            salt = bytes.fromhex(str(row[f"{field}_salt"]))
        except (KeyError, IndexError, TypeError, ValueError, InvalidInput) as exc:
            raise VerificationError(
                f"entry {index}: the {field} of decision {decision} has no commitment or salt"
            ) from exc
        if commitment_of(salt, canonical_json(row.get(field))) != expected:
            raise VerificationError(f"entry {index}: the {field} of decision {decision} does not match its commitment")


def _check_feedback(found: Any, checkpoint: Checkpoint, position: int) -> None:
    row, entry = _proven_entry(found, checkpoint, "feedback", position)
    index = row["ledger_index"]
    feedback_id = row.get("feedback_id")
    if entry.index != index or entry.kind != "feedback" or entry.body.get("feedback_id") != feedback_id:
        raise VerificationError(f"entry {index} does not record feedback {feedback_id}")
    try:
        expected = Commitment.parse(entry.body["expected_commitment"])
        salt = bytes.fromhex(str(row["expected_salt"]))
    except (KeyError, TypeError, ValueError, InvalidInput) as exc:
        raise VerificationError(
            f"entry {index}: the expected value of feedback {feedback_id} has no commitment"
        ) from exc
    if commitment_of(salt, canonical_json(row.get("expected"))) != expected:
        raise VerificationError(f"entry {index}: the expected value of feedback {feedback_id} does not match")


def _check_batch_row(found: Any, checkpoint: Checkpoint, position: int) -> None:
    row, entry = _proven_entry(found, checkpoint, "batch row", position)
    index, batch, number, value = row["ledger_index"], row.get("batch"), row.get("row"), row.get("value")
    sealed = entry.body.get("sealed")
    if (
        entry.index != index
        or not entry.kind.startswith("data.batch_")
        or entry.body.get("batch") != batch
        or not isinstance(sealed, dict)
    ):
        raise VerificationError(f"entry {index} does not record the sealed rows of batch {batch}")
    if not isinstance(number, int) or not isinstance(value, dict) or value.get("row") != number:
        raise VerificationError(f"entry {index}: batch row {number} does not hold its own row number")
    try:
        salt = bytes.fromhex(str(row["salt"]))
        root = bytes.fromhex(str(sealed["commitments_root"]))
        proof = [bytes.fromhex(str(h)) for h in row["row_proof"]]
        size, at = int(sealed["sealed_rows"]), row["row_position"]
        if not isinstance(at, int):
            raise TypeError("row_position")
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationError(f"entry {index}: batch row {number} lacks its salt, position or audit path") from exc
    leaf = commitment_leaf(number, commitment_of(salt, canonical_json(value)).hex)
    try:
        merkle.verify_inclusion(merkle.leaf_hash(leaf), at, size, proof, root)
    except VerificationError as exc:
        raise VerificationError(f"entry {index}: batch row {number} does not match the batch's commitments") from exc


def check_export(text: str, pin: KeyPin) -> ExportReport:
    """Verify an export document; raise :class:`VerificationError` naming the first thing that fails."""
    document = parse_json_object(text, what="subject export")
    if document.get("format") != FORMAT:
        raise InvalidInput(f"not a subject export: format is {document.get('format')!r}, expected {FORMAT!r}")
    key = pin.resolve(_offered(document), holder="the export")
    checkpoint = Checkpoint.open(str(document.get("checkpoint", "")), key)
    decisions = document.get("decisions")
    if not isinstance(decisions, list):
        raise VerificationError("the export has no list of decisions")
    for position, row in enumerate(decisions):
        _check_decision(row, checkpoint, position)
    feedback = document.get("feedback", [])
    if not isinstance(feedback, list):
        raise VerificationError("the export's feedback is not a list")
    for position, row in enumerate(feedback):
        _check_feedback(row, checkpoint, position)
    batch_rows = document.get("batch_rows", [])
    if not isinstance(batch_rows, list):
        raise VerificationError("the export's batch rows are not a list")
    for position, row in enumerate(batch_rows):
        _check_batch_row(row, checkpoint, position)
    return ExportReport(len(decisions), checkpoint.size, key.fingerprint, len(feedback), len(batch_rows))
