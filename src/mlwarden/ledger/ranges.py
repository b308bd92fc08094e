"""Pure index math for RFC 9162 trees: proof ranges, perfect subtrees and the append frontier.

Nothing here hashes entries or touches storage. A tree of size ``n`` is addressed by
half-open leaf ranges ``[lo, hi)``; a *perfect subtree* is ``(level, idx)``, covering
leaves ``[idx << level, (idx + 1) << level)``. The stored log keeps exactly these
perfect subtrees, so any proof is assembled from ``O(log n)`` stored hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from mlwarden.errors import InvalidInput

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

Node = tuple[int, int]
"""A perfect subtree: ``(level, idx)``."""

NodeLookup = Callable[[int, int], bytes]


def node_hash(left: bytes, right: bytes) -> bytes:
    """Interior node hash: SHA-256(0x01 || left || right) (RFC 9162 section 2.1.1)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly less than ``n`` (``n`` >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form the inclusion proof of ``index`` in a tree of ``size``.

    Bottom-up order, as RFC 9162 PATH(m, D[n]) emits them.
    """
    if not 0 <= index < size:
        raise InvalidInput(f"leaf index {index} is outside a tree of size {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form the consistency proof from ``old_size`` to ``new_size``.

    Bottom-up order, as RFC 9162 PROOF(m, D[n]) / SUBPROOF emits them.
    """
    if not 0 <= old_size <= new_size:
        raise InvalidInput(f"consistency needs 0 <= old <= new, got old={old_size} new={new_size}")
    if old_size in (0, new_size):
        return []
    out: list[tuple[int, int]] = []
    lo, hi = 0, new_size
    complete = True
    while True:
        n, m = hi - lo, old_size - lo
        if m == n:
            if not complete:
                out.append((lo, hi))
            break
        k = split_point(n)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
            complete = False
    out.reverse()
    return out


def is_perfect(lo: int, hi: int) -> bool:
    """Whether ``[lo, hi)`` is one aligned perfect subtree."""
    width = hi - lo
    return width > 0 and width & (width - 1) == 0 and lo % width == 0


def range_nodes(lo: int, hi: int) -> list[Node]:
    """The perfect subtrees, left to right, whose hashes give MTH(D[lo:hi])."""
    if hi <= lo:
        raise InvalidInput(f"empty leaf range [{lo}, {hi})")
    out: list[Node] = []
    stack = [(lo, hi)]
    while stack:
        a, b = stack.pop()
        if is_perfect(a, b):
            level = (b - a).bit_length() - 1
            out.append((level, a >> level))
        else:
            k = split_point(b - a)
            stack.append((a + k, b))
            stack.append((a, a + k))
    return out


def range_hash(lo: int, hi: int, lookup: NodeLookup) -> bytes:
    """MTH(D[lo:hi]) from the hashes of perfect subtrees (RFC 9162 recursion)."""
    if is_perfect(lo, hi):
        level = (hi - lo).bit_length() - 1
        return lookup(level, lo >> level)
    k = split_point(hi - lo)
    return node_hash(range_hash(lo, lo + k, lookup), range_hash(lo + k, hi, lookup))


def proof_nodes(ranges: Iterable[tuple[int, int]]) -> set[Node]:
    """Every perfect subtree needed to hash a set of ranges: one storage round trip."""
    needed: set[Node] = set()
    for lo, hi in ranges:
        needed.update(range_nodes(lo, hi))
    return needed


def root_nodes(size: int) -> list[Node]:
    """The perfect subtrees (the frontier), left to right, of a tree of ``size`` leaves."""
    return range_nodes(0, size) if size else []


def fold_frontier(hashes: Sequence[bytes]) -> bytes:
    """The root hash from the frontier's subtree hashes, left to right."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


class Frontier:
    """The right edge of a growing tree: one hash per set bit of its size.

    Appending a leaf costs O(log n) and reports each perfect subtree it completes,
    which is what the stored log persists.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != size.bit_count():
            raise InvalidInput(f"frontier of size {size} needs {max(size, 0).bit_count()} hashes, got {len(hashes)}")
        self.size = size
        self.hashes = list(hashes)

    @classmethod
    def from_bytes(cls, size: int, packed: bytes) -> Frontier:
        """Rebuild from :meth:`to_bytes` output."""
        if len(packed) % HASH_SIZE:
            raise InvalidInput(f"packed frontier has {len(packed)} bytes, not a multiple of 32")
        hashes = [packed[i : i + HASH_SIZE] for i in range(0, len(packed), HASH_SIZE)]
        return cls(size, hashes)

    def to_bytes(self) -> bytes:
        """The subtree hashes, concatenated left to right."""
        return b"".join(self.hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return the perfect subtrees ``(level, idx, hash)`` it completes."""
        idx = self.size
        completed = [(0, idx, leaf)]
        h, level = leaf, 0
        while idx & 1:
            h = node_hash(self.hashes.pop(), h)
            level += 1
            idx >>= 1
            completed.append((level, idx, h))
        self.hashes.append(h)
        self.size += 1
        return completed

    def root(self) -> bytes:
        """The Merkle tree hash of everything appended so far."""
        return fold_frontier(self.hashes)

    def copy(self) -> Frontier:
        """An independent copy."""
        return Frontier(self.size, self.hashes)
