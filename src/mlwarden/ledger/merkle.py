"""RFC 9162 Merkle tree hashing, proofs and proof verification, on bytes; pure, no I/O.

Entries are the raw leaf data D[i]. Leaf hash = SHA-256(0x00 || D[i]); node hash =
SHA-256(0x01 || left || right). Proof generation follows RFC 9162 section 2.1.3.1 /
2.1.4.1 (PATH and SUBPROOF); verification follows sections 2.1.3.2 and 2.1.4.2 step by
step. Verifiers return ``None`` and raise :class:`~mlwarden.errors.VerificationError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from mlwarden.errors import VerificationError
from mlwarden.ledger.ranges import (
    EMPTY_ROOT,
    HASH_SIZE,
    LEAF_PREFIX,
    Frontier,
    consistency_ranges,
    inclusion_ranges,
    node_hash,
)

__all__ = [
    "EMPTY_ROOT",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]


def leaf_hash(entry: bytes) -> bytes:
    """Leaf hash: SHA-256(0x00 || entry)."""
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash over already-hashed leaves (O(n), O(log n) memory)."""
    frontier = Frontier()
    for h in leaf_hashes:
        frontier.append(h)
    return frontier.root()


def merkle_root(entries: Sequence[bytes]) -> bytes:
    """MTH(D[n]): the root hash of a tree over ``entries``; SHA-256("") when empty."""
    return root_from_leaf_hashes([leaf_hash(e) for e in entries])


def _range_root(leaf_hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    return root_from_leaf_hashes(leaf_hashes[lo:hi])


def inclusion_proof(entries: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]): the audit path of entry ``index``, bottom-up."""
    return audit_path([leaf_hash(e) for e in entries], index)


def audit_path(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """:func:`inclusion_proof` from the leaves' hashes (hash them once for many proofs over one tree)."""
    return [_range_root(leaf_hashes, lo, hi) for lo, hi in inclusion_ranges(index, len(leaf_hashes))]


def consistency_proof(entries: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]): proves the first ``old_size`` entries are a prefix of ``entries``."""
    hashes = [leaf_hash(e) for e in entries]
    return [_range_root(hashes, lo, hi) for lo, hi in consistency_ranges(old_size, len(hashes))]


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationError(f"{name} must be {HASH_SIZE} bytes, got {len(value)}")


def _check_proof(proof: Sequence[bytes]) -> None:
    for i, p in enumerate(proof):
        _check_hash(f"proof element {i}", p)


def _root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise VerificationError(f"inclusion proof is too long: {len(proof)} elements")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError(f"inclusion proof is too short: {len(proof)} elements")
    return r


def verify_inclusion(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` sits at ``index`` in the tree of ``tree_size`` with ``root``.

    RFC 9162 section 2.1.3.2. Raises :class:`VerificationError` when it does not.
    """
    if not 0 <= index < tree_size:
        raise VerificationError(f"leaf index {index} is outside a tree of size {tree_size}")
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root hash", root)
    _check_proof(proof)
    computed = _root_from_inclusion(leaf_hash, index, tree_size, proof)
    if computed != root:
        raise VerificationError(
            f"inclusion proof does not lead to the root: expected {root.hex()}, got {computed.hex()}"
        )


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree of ``old_size`` with ``old_root`` is a prefix of the newer tree.

    RFC 9162 section 2.1.4.2. Raises :class:`VerificationError` when it is not.
    """
    _check_hash("old root", old_root)
    _check_hash("new root", new_root)
    _check_proof(proof)
    if not 0 <= old_size <= new_size:
        raise VerificationError(f"consistency needs 0 <= old <= new, got old={old_size} new={new_size}")
    if old_size == new_size:
        if proof:
            raise VerificationError("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise VerificationError("trees of equal size have different roots")
        return
    if old_size == 0:
        if proof:
            raise VerificationError("consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise VerificationError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError(f"consistency proof is too long: {len(proof)} elements")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError(f"consistency proof is too short: {len(proof)} elements")
    if fr != old_root:
        raise VerificationError(
            f"consistency proof does not reproduce the old root: expected {old_root.hex()}, got {fr.hex()}"
        )
    if sr != new_root:
        raise VerificationError(
            f"consistency proof does not reproduce the new root: expected {new_root.hex()}, got {sr.hex()}"
        )
