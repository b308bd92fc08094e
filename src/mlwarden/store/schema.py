"""Database schema (SQLAlchemy Core); Alembic migrations create it, code queries through it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("subject", String(512), nullable=False),
    Column("entry", Text, nullable=False),
    # Lookup copies of the entry's own fields (migration 0018_audit_index; checked by `ledger verify`).
    Column("principal", String(512), nullable=True),
    Column("entry_time", String(32), nullable=True),
    Column("decision", String(64), nullable=True),
    Column("status", SmallInteger, nullable=True),
)

ledger_nodes = Table(
    "ledger_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
    sqlite_with_rowid=False,
)

ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("frontier", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
)

ledger_checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("note", Text, nullable=False),
    Column("created", String(32), nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("sha256", String(64), nullable=False),
    Column("format", String(32), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("card", Text, nullable=False),
    Column("card_sha256", String(64), nullable=False),
    Column("card_meta", Text, nullable=False),
    Column("input_signature", Text, nullable=True),
    Column("lineage", Text, nullable=False),
    Column("registrant", String(512), nullable=False),
    Column("created", String(32), nullable=False),
    Column("attestation", Text, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
    UniqueConstraint("name", "sha256", name="uq_model_versions_name_sha256"),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("sha256", String(64), nullable=True, index=True),
    Column("md5", String(32), nullable=True),
    Column("source", Text, nullable=False),
    Column("format", String(32), nullable=False),
    Column("rows", BigInteger, nullable=True),
    Column("schema_fingerprint", String(64), nullable=True),
    Column("profile", Text, nullable=False),
    Column("registrant", String(512), nullable=False),
    Column("created", String(32), nullable=False),
    Column("attestation", Text, nullable=False),
    Column("ledger_index", BigInteger, nullable=False),
    Column("label", String(128), nullable=True),
    Column("contract", Text, nullable=True),
    Column("lineage", Text, nullable=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("models", Text, nullable=False),
    Column("created", String(32), nullable=False),
    Column("expires", String(32), nullable=True),
    Column("revoked", String(32), nullable=True),
    Column("created_by", String(512), nullable=False),
    Column("grant", Text, nullable=True),  # JSON scopes an admin token may hand out; NULL: before grants
)

ledger_refs = Table(
    "ledger_refs",
    metadata,
    Column("ref", String(64), primary_key=True),
    Column("idx", BigInteger, nullable=False),
)

approvals = Table(
    "approvals",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("principal", String(512), primary_key=True),
    Column("created", String(32), nullable=False),
    Column("comment", Text, nullable=True),
)

attachments = Table(
    "attachments",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("sha256", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("filename", String(256), nullable=False),
    Column("created", String(32), nullable=False),
)

batches = Table(
    "batches",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("dataset", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("filename", String(256), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("reasons", Text, nullable=False),
    Column("flagged", Text, nullable=False),
    Column("ingested_by", String(512), nullable=False),
    Column("created", String(32), nullable=False),
    Column("released_by", String(512), nullable=True),
    Column("release_reason", Text, nullable=True),
    Column("dataset_version", Integer, nullable=True),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated", String(32), nullable=False),
)

privacy_keys = Table(
    "privacy_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("scope_tag", String(64), nullable=False),
    Column("field", String(16), nullable=False),
    Column("day", String(10), nullable=False),
    Column("kek_id", String(16), nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("created", String(32), nullable=False),
    UniqueConstraint("scope_tag", "field", "day", name="uq_privacy_keys_slot"),
    Index("ix_privacy_keys_field_day", "field", "day"),
)
"""Live data keys, wrapped by the workspace KEK; a subject's scope_tag is an HMAC, never the id."""

privacy_payloads = Table(
    "privacy_payloads",
    metadata,
    Column("decision_id", String(64), primary_key=True),
    Column("field", String(16), primary_key=True),
    Column("key_id", String(32), nullable=False),
    Column("day", String(10), nullable=False),
    Column("kek_id", String(16), nullable=True),
    Column("wrapped_key", LargeBinary, nullable=True),
    Column("nonce", LargeBinary(12), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("ledger_index", BigInteger, nullable=True),
    Column("erasure_id", String(32), nullable=True),
    Index("ix_privacy_payloads_field_day", "field", "day"),
)
"""Encrypted payloads (salt + canonical JSON); they outlive their key, unreadable once it is erased.

A row without subject holds its own wrapped key (``kek_id``, ``wrapped_key``); erasing it clears
both and sets ``erasure_id``. A subject's row uses the subject's key of the day in ``privacy_keys``."""

privacy_erasures = Table(
    "privacy_erasures",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("erasure_id", String(32), nullable=False, index=True),
    Column("erased", String(32), nullable=False),
)
"""One tombstone per destroyed data key: which erasure destroyed it, and when."""

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(256), nullable=False),  # "" when nobody holds it
    Column("epoch", BigInteger, nullable=False),  # fencing counter: +1 each time the lease changes hands
    Column("expires_at", Double, nullable=False),  # seconds since 1970 by the DATABASE's clock
)

screening_detectors = Table(
    "screening_detectors",
    metadata,
    Column("dataset", String(128), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("format", Integer, nullable=False),
    Column("reference_sha256", String(64), nullable=False),
    Column("detectors_sha256", String(64), nullable=False),
    Column("created", String(32), nullable=False),
    Column("attestation", Text, nullable=False),  # signs the hash with what it was fitted from; checked on use
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),  # HMAC of the session id under a workspace key, never the id
    Column("principal", String(512), nullable=False),  # for listing only: the sealed credential decides
    Column("created", String(32), nullable=False),
    Column("expires", String(32), nullable=False),  # for clean-up only: the sealed expiry decides
    Column("sealed", LargeBinary, nullable=False),  # AES-GCM under a key derived from the session id
)
"""Web console sign-ins. A row grants nothing without the cookie's session id: the credential and
expiry inside ``sealed`` can only be opened (and are authenticated) with it."""

Index("ix_ledger_entries_kind_idx", ledger_entries.c.kind, ledger_entries.c.idx)
"""The console's ledger search: newest entries of a kind by keyset (``kind = ? AND idx < ? ORDER BY idx DESC``)."""

batch_sealed_rows = Table(
    "batch_sealed_rows",
    metadata,
    Column("batch_id", String(16), primary_key=True),
    Column("row", BigInteger, primary_key=True, autoincrement=False),
    Column("commitment", String(64), nullable=False),
)
"""Each sealed row's commitment (its personal columns sealed in ``privacy_payloads`` as ``batch:<id>:<row>``).

The batch's ledger entry commits to the list by its Merkle root, so a changed or dropped row here is caught."""

privacy_rows = Table(
    "privacy_rows",
    metadata,
    Column("decision_id", String(64), primary_key=True),
    Column("day", String(10), nullable=False),
    Column("inputs_key", String(32), nullable=False),
    Column("outputs_key", String(32), nullable=False),
    Column("share", LargeBinary, nullable=True),
    Column("inputs", LargeBinary, nullable=False),
    Column("outputs", LargeBinary, nullable=False),
    Column("ledger_index", BigInteger, nullable=True),
    Column("erasure_id", String(32), nullable=True),
)
"""A prediction row's sealed inputs and outputs (each ``nonce || AES-256-GCM ciphertext``), one row per decision.

``inputs_key``/``outputs_key`` name keys of the day in ``privacy_keys``: a subject's, or the
``unnamed`` scope's for rows without subject, whose own key derives from that day key and
``share``. Erasing such a decision clears ``share`` and sets ``erasure_id``. Predictions before
migration 0017 stay in ``privacy_payloads``, which also holds feedback's ``expected`` values."""

watch_cursors = Table(
    "watch_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("next_index", BigInteger, nullable=False),  # the first ledger index not yet processed
    Column("updated", String(32), nullable=False),
)
"""Where each watcher stands in the ledger; advanced in the transaction that records its alerts."""

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", String(40), primary_key=True),
    Column("rule", String(64), nullable=False, index=True),
    Column("severity", String(16), nullable=False),
    Column("principal", String(512), nullable=True),
    Column("subject", String(512), nullable=True),
    Column("first_index", BigInteger, nullable=False),
    Column("last_index", BigInteger, nullable=False),
    Column("summary", Text, nullable=False),
    Column("time", String(32), nullable=False),
    Column("entry_index", BigInteger, nullable=False),
    Column("acknowledged_by", String(512), nullable=True),
    Column("acknowledged_at", String(32), nullable=True),
    Column("ack_reason", Text, nullable=True),
    Column("ack_index", BigInteger, nullable=True),
)
"""A cache of ``alert.raised``/``alert.acknowledged`` entries: listing checks every row against its entry."""

alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("idempotency_key", String(160), primary_key=True),  # "<alert_id>/<sink>": recomputed, never trusted
    Column("alert_id", String(64), nullable=False),
    Column("sink", String(64), nullable=False),
    Column("entry_index", BigInteger, nullable=True),  # the alert.raised entry, when known at enqueue
    Column("after_index", BigInteger, nullable=False),  # the alert's last evidence index: its entry lies after
    Column("created", Double, nullable=False),  # seconds since 1970
    Column("attempts", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("next_attempt_at", Double, nullable=False),
    Column("delivered_at", Double, nullable=True),
    Column("refused_at", Double, nullable=True),  # the row disagreed with the ledger: never delivered
    Column("last_error", Text, nullable=True),
    Index("ix_alert_outbox_due", "delivered_at", "refused_at", "next_attempt_at"),
)
"""One row per (alert, sink) still to deliver or delivered; what is sent is read from the ledger, not from here."""
