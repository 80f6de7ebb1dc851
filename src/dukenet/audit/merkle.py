"""RFC 9162 Merkle tree hashing, proofs planned over stored subtree hashes, and verifiers.

The log stores the hash of every *complete* subtree: node ``(level, index)`` covers leaves
``[index * 2**level, (index + 1) * 2**level)``; level 0 holds the leaf hashes. Any range an
RFC 9162 proof needs splits into at most ~log2(n) such nodes, so a proof costs O(log n)
node reads however large the log is. Functions here are pure; ``dukenet.audit.log`` reads
the nodes they ask for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

NodeKey = tuple[int, int]  # (level, index)
Range = tuple[int, int]  # leaves [start, end)

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than ``size`` (``size`` > 1)."""
    return 1 << ((size - 1).bit_length() - 1)


def subtrees(start: int, end: int) -> list[NodeKey]:
    """The complete subtrees covering ``[start, end)``, largest first.

    Valid for every range an RFC 9162 computation visits (their start is a multiple of the
    largest power of two not above their size).
    """
    keys: list[NodeKey] = []
    position, remaining = start, end - start
    while remaining > 0:
        level = remaining.bit_length() - 1
        keys.append((level, position >> level))
        position += 1 << level
        remaining -= 1 << level
    return keys


def range_hash(start: int, end: int, nodes: Mapping[NodeKey, bytes]) -> bytes:
    """MTH(D[start:end]) from stored complete-subtree hashes."""
    if end <= start:
        return EMPTY_ROOT
    keys = subtrees(start, end)
    result = nodes[keys[-1]]
    for key in reversed(keys[:-1]):
        result = node_hash(nodes[key], result)
    return result


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose hashes form PATH(index, D[size]), leaf end first."""
    ranges: list[Range] = []
    low, high = 0, size
    while high - low > 1:
        k = _split(high - low)
        if index < low + k:
            ranges.append((low + k, high))
            high = low + k
        else:
            ranges.append((low, low + k))
            low += k
    ranges.reverse()
    return ranges


def consistency_ranges(first: int, second: int) -> list[Range]:
    """The ranges whose hashes form PROOF(first, D[second]) (RFC 9162 section 2.1.4.1)."""
    ranges: list[Range] = []

    def subproof(m: int, low: int, high: int, complete: bool) -> None:
        size = high - low
        if m == size:
            if not complete:
                ranges.append((low, high))
            return
        k = _split(size)
        if m <= k:
            subproof(m, low, low + k, complete)
            ranges.append((low + k, high))
        else:
            subproof(m - k, low + k, high, False)
            ranges.append((low, low + k))

    if 0 < first < second:
        subproof(first, 0, second, True)
    return ranges


def nodes_for(ranges: Iterable[Range]) -> set[NodeKey]:
    """Every stored node the given ranges need."""
    return {key for start, end in ranges for key in subtrees(start, end)}


def hashes_for(ranges: Sequence[Range], nodes: Mapping[NodeKey, bytes]) -> list[bytes]:
    """The proof hashes for ``ranges``."""
    return [range_hash(start, end, nodes) for start, end in ranges]


def appended_nodes(
    size: int, new_leaf_hashes: Sequence[bytes], frontier: Mapping[NodeKey, bytes]
) -> dict[NodeKey, bytes]:
    """Nodes created by appending leaves to a tree of ``size`` leaves.

    ``frontier`` holds the nodes of ``subtrees(0, size)`` (the right edge), which is all
    that is needed from the existing tree.
    """
    known = dict(frontier)
    created: dict[NodeKey, bytes] = {}
    for offset, value in enumerate(new_leaf_hashes):
        index = size + offset
        created[(0, index)] = known[(0, index)] = value
        level, position = 0, index
        while position & 1:
            parent = node_hash(known[(level, position - 1)], known[(level, position)])
            level, position = level + 1, position >> 1
            created[(level, position)] = known[(level, position)] = parent
    return created


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH computed straight from the definition (reference; O(n))."""
    if not leaf_hashes:
        return EMPTY_ROOT
    if len(leaf_hashes) == 1:
        return leaf_hashes[0]
    k = _split(len(leaf_hashes))
    return node_hash(root_from_leaves(leaf_hashes[:k]), root_from_leaves(leaf_hashes[k:]))


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2: does ``proof`` place ``leaf`` at ``leaf_index`` under ``root``?"""
    if leaf_index < 0 or leaf_index >= tree_size:
        return False
    fn, sn, result = leaf_index, tree_size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2: is the tree of ``second`` leaves an extension of ``first``?"""
    if first < 0 or second < first:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof  # every tree extends the empty tree
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for value in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(value, fr)
            sr = node_hash(value, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, value)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0
