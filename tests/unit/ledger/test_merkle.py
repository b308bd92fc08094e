"""RFC 9162 hashing and proofs against the published CT vectors, a naive reference and hypothesis."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.errors import InvalidInput, VerificationError
from mlwarden.ledger import merkle
from mlwarden.ledger.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    verify_consistency,
    verify_inclusion,
)
from mlwarden.ledger.ranges import node_hash

VECTORS = json.loads((Path(__file__).parents[2] / "vectors" / "ct_merkle.json").read_text())
LEAVES = [bytes.fromhex(h) for h in VECTORS["leaves_hex"]]
ROOTS = [bytes.fromhex(h) for h in VECTORS["roots"]]


def _hexes(values: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


# A naive RFC 6962 section 2.1 reference, written straight from the text, to cross-check.
def _ref_mth(d: Sequence[bytes]) -> bytes:
    if not d:
        return merkle.EMPTY_ROOT
    if len(d) == 1:
        return leaf_hash(d[0])
    k = 1
    while k * 2 < len(d):
        k *= 2
    return node_hash(_ref_mth(d[:k]), _ref_mth(d[k:]))


def _ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = 1
    while k * 2 < len(d):
        k *= 2
    if m < k:
        return [*_ref_path(m, d[:k]), _ref_mth(d[k:])]
    return [*_ref_path(m - k, d[k:]), _ref_mth(d[:k])]


def _ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [_ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*_ref_subproof(m, d[:k], b), _ref_mth(d[k:])]
    return [*_ref_subproof(m - k, d[k:], False), _ref_mth(d[:k])]


def test_hasher_vectors() -> None:
    """Leaf and node hashes match the RFC 6962 hasher vectors."""
    for v in VECTORS["hasher"]:
        if v["kind"] == "leaf":
            data = v["leaf_ascii"].encode() if "leaf_ascii" in v else bytes.fromhex(v["leaf"])
            assert leaf_hash(data).hex() == v["want"]
        else:
            got = node_hash(v["left_ascii"].encode(), v["right_ascii"].encode())
            assert got.hex() == v["want"]


def test_empty_root() -> None:
    """The empty tree's root is SHA-256 of the empty string."""
    assert merkle_root([]).hex() == VECTORS["empty_root"]


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_for_every_size(size: int) -> None:
    """The root of the first N reference leaves matches the published root, N = 1..8."""
    assert merkle_root(LEAVES[:size]) == ROOTS[size - 1]


def test_interior_node_vectors() -> None:
    """Every perfect subtree of the 8-leaf tree matches the published node hashes."""
    for level, hashes in enumerate(VECTORS["node_hashes_by_level"]):
        width = 1 << level
        for idx, want in enumerate(hashes):
            assert merkle_root(LEAVES[idx * width : (idx + 1) * width]).hex() == want


@pytest.mark.parametrize("vec", VECTORS["inclusion"], ids=lambda v: f"{v['index']}-of-{v['size']}")
def test_inclusion_vectors(vec: dict[str, object]) -> None:
    """Inclusion proofs equal the published paths and verify against the published roots."""
    index, size = int(vec["index"]), int(vec["size"])  # type: ignore[call-overload]
    want = _hexes(vec["proof"])  # type: ignore[arg-type]
    assert inclusion_proof(LEAVES[:size], index) == want
    verify_inclusion(leaf_hash(LEAVES[index]), index, size, want, ROOTS[size - 1])


@pytest.mark.parametrize("vec", VECTORS["consistency"], ids=lambda v: f"{v['old']}-to-{v['new']}")
def test_consistency_vectors(vec: dict[str, object]) -> None:
    """Consistency proofs equal the published proofs and verify between the published roots."""
    old, new = int(vec["old"]), int(vec["new"])  # type: ignore[call-overload]
    want = _hexes(vec["proof"])  # type: ignore[arg-type]
    assert consistency_proof(LEAVES[:new], old) == want
    verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], want)


def test_all_small_proofs_match_reference() -> None:
    """Every inclusion and consistency proof over the 8 reference leaves matches the naive RFC text."""
    for n in range(1, 9):
        d = LEAVES[:n]
        for m in range(n):
            assert inclusion_proof(d, m) == _ref_path(m, d)
        for m in range(1, n + 1):
            assert consistency_proof(d, m) == _ref_subproof(m, d, True)


def _corrupted_inclusion(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[str, int, int, list[bytes], bytes, bytes]]:
    some = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    cases = [
        ("index-1", index - 1, size, proof, root, leaf),
        ("index+1", index + 1, size, proof, root, leaf),
        ("index^2", index ^ 2, size, proof, root, leaf),
        ("size*2", index, size * 2, proof, root, leaf),
        ("size/2", index, size // 2, proof, root, leaf),
        ("wrong leaf", index, size, proof, root, leaf_hash(b"WrongLeaf")),
        ("empty root", index, size, proof, merkle.EMPTY_ROOT, leaf),
        ("random root", index, size, proof, some, leaf),
        ("trailing garbage", index, size, [*proof, b""], root, leaf),
        ("trailing root", index, size, [*proof, root], root, leaf),
        ("preceding garbage", index, size, [b"", *proof], root, leaf),
        ("preceding root", index, size, [root, *proof], root, leaf),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        cases.append((f"flipped {i}", index, size, bad, root, leaf))
    if proof:
        cases.append(("removed", index, size, proof[:-1], root, leaf))
    if len(proof) > 1:
        cases.append(("inserted", index, size, [proof[0], some, *proof[1:]], root, leaf))
    return cases


@pytest.mark.parametrize("vec", VECTORS["inclusion"], ids=lambda v: f"{v['index']}-of-{v['size']}")
def test_corrupted_inclusion_vectors_fail(vec: dict[str, object]) -> None:
    """Each hostile variant of a published inclusion proof is rejected (transparency-dev's list)."""
    index, size = int(vec["index"]), int(vec["size"])  # type: ignore[call-overload]
    proof = _hexes(vec["proof"])  # type: ignore[arg-type]
    for name, i, s, p, r, leaf in _corrupted_inclusion(index, size, proof, ROOTS[size - 1], leaf_hash(LEAVES[index])):
        if (i, s) == (index, size) and p == proof and r == ROOTS[size - 1] and leaf == leaf_hash(LEAVES[index]):
            continue
        with pytest.raises(VerificationError):  # noqa: PT012 - the fail names the corruption that slipped through
            verify_inclusion(leaf, i, s, p, r)
            pytest.fail(f"corruption {name!r} verified")


def test_inclusion_index_out_of_range_is_invalid_input() -> None:
    """Asking for a proof beyond the tree is an input error, not a crash."""
    with pytest.raises(InvalidInput):
        inclusion_proof(LEAVES[:3], 3)


entries_strategy = st.lists(st.binary(max_size=12), min_size=1, max_size=70, unique=True)


@settings(max_examples=150, deadline=None)
@given(entries=entries_strategy, data=st.data())
def test_property_inclusion_verifies_and_nothing_else(entries: list[bytes], data: st.DataObject) -> None:
    """Every inclusion proof verifies; another index, size, root or any flipped bit does not."""
    n = len(entries)
    index = data.draw(st.integers(0, n - 1))
    proof = inclusion_proof(entries, index)
    root = merkle_root(entries)
    leaf = leaf_hash(entries[index])
    assert proof == _ref_path(index, entries)
    verify_inclusion(leaf, index, n, proof, root)

    if n > 1:
        other = data.draw(st.integers(0, n - 1).filter(lambda i: i != index))
        with pytest.raises(VerificationError):
            verify_inclusion(leaf, other, n, proof, root)
    other_size = data.draw(st.integers(index + 1, n + 5).filter(lambda s: s != n))
    grown = [*entries, *(b"extra-%d" % i for i in range(5))]
    with pytest.raises(VerificationError):
        verify_inclusion(leaf, index, other_size, proof, merkle_root(grown[:other_size]))
    with pytest.raises(VerificationError):
        verify_inclusion(leaf, index, n, proof, merkle_root([*entries, b"x"]))
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = list(proof)
        bad[i] = bytes(b ^ (1 << (bit % 8)) if j == bit // 8 else b for j, b in enumerate(bad[i]))
        with pytest.raises(VerificationError):
            verify_inclusion(leaf, index, n, bad, root)
    bit = data.draw(st.integers(0, 255))
    bad_leaf = bytes(b ^ (1 << (bit % 8)) if j == bit // 8 else b for j, b in enumerate(leaf))
    with pytest.raises(VerificationError):
        verify_inclusion(bad_leaf, index, n, proof, root)


@settings(max_examples=150, deadline=None)
@given(entries=entries_strategy, data=st.data())
def test_property_consistency_verifies_and_nothing_else(entries: list[bytes], data: st.DataObject) -> None:
    """Every consistency proof verifies; another size or root, or any flipped bit, does not."""
    n = len(entries)
    old = data.draw(st.integers(1, n))
    proof = consistency_proof(entries, old)
    assert proof == _ref_subproof(old, entries, True)
    old_root, new_root = merkle_root(entries[:old]), merkle_root(entries)
    verify_consistency(old, n, old_root, new_root, proof)
    if old < n:
        with pytest.raises(VerificationError):
            verify_consistency(old, n, new_root, new_root, proof)
        with pytest.raises(VerificationError):
            verify_consistency(old, n, old_root, old_root, proof)
        with pytest.raises(VerificationError):
            verify_consistency(old, n + 1, old_root, merkle_root([*entries, b"y"]), proof)
        i = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = list(proof)
        bad[i] = bytes(b ^ (1 << (bit % 8)) if j == bit // 8 else b for j, b in enumerate(bad[i]))
        with pytest.raises(VerificationError):
            verify_consistency(old, n, old_root, new_root, bad)
        if old > 1:
            other_old = old - 1
            if merkle_root(entries[:other_old]) != old_root:
                with pytest.raises(VerificationError):
                    verify_consistency(other_old, n, old_root, new_root, proof)
    else:
        with pytest.raises(VerificationError):
            verify_consistency(old, n, old_root, merkle_root([*entries, b"z"]), proof)


@settings(max_examples=100, deadline=None)
@given(entries=st.lists(st.binary(max_size=4), max_size=80))
def test_property_root_matches_reference(entries: list[bytes]) -> None:
    """The incremental root equals the recursive MTH of RFC 6962 for any list of entries."""
    assert merkle_root(entries) == _ref_mth(entries)
