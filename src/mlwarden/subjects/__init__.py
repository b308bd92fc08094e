"""Data subjects' personal data across the ledger: sealing predictions, opening decisions, erasure.

The service layer over :mod:`mlwarden.privacy` (commitments, keys, payloads) and the ledger:
prediction entries commit to their rows (``"v": 2``) and carry the sealed payloads to the
ledger's transaction; decisions are opened against their verified entries; erasures and
retention destroy keys and record the erasure entry in the same transaction.
"""
