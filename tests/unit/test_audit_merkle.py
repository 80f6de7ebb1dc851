"""RFC 9162 Merkle trees: roots, inclusion and consistency proofs for every tree size 1..64.

Proofs are built the way the log builds them (from stored complete-subtree hashes only)
and checked against a reference that follows the RFC's recursive definitions over the
leaves, and against the RFC's verification algorithms.
"""

from __future__ import annotations

import hashlib

import pytest

from dukenet.audit import merkle

MAX_SIZE = 64
LEAVES = [merkle.leaf_hash(f"leaf {i}".encode()) for i in range(MAX_SIZE)]


def mth(leaves: list[bytes]) -> bytes:
    return merkle.root_from_leaves(leaves)


def reference_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) exactly as RFC 9162 section 2.1.3.1 defines it."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*reference_path(m, leaves[:k]), mth(leaves[k:])]
    return [*reference_path(m - k, leaves[k:]), mth(leaves[:k])]


def reference_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) exactly as RFC 9162 section 2.1.4.1 defines it."""
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*reference_subproof(m, leaves[:k], complete), mth(leaves[k:])]
    return [*reference_subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def stored_nodes(size: int) -> dict[merkle.NodeKey, bytes]:
    """What the log stores after appending ``size`` leaves in uneven batches."""
    nodes: dict[merkle.NodeKey, bytes] = {}
    position = 0
    batch = 1
    while position < size:
        new = LEAVES[position : min(size, position + batch)]
        frontier = {key: nodes[key] for key in merkle.subtrees(0, position)}
        nodes.update(merkle.appended_nodes(position, new, frontier))
        position += len(new)
        batch = batch % 5 + 1
    return nodes


NODES = stored_nodes(MAX_SIZE)


def test_known_roots() -> None:
    assert hashlib.sha256(b"").digest() == merkle.EMPTY_ROOT
    assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert mth([a, b]) == hashlib.sha256(b"\x01" + a + b).digest()
    c = merkle.leaf_hash(b"c")
    assert mth([a, b, c]) == merkle.node_hash(merkle.node_hash(a, b), c)


def test_stored_nodes_are_exactly_the_complete_subtrees() -> None:
    for (level, index), value in NODES.items():
        start = index << level
        assert value == mth(LEAVES[start : start + (1 << level)])
    expected = sum(MAX_SIZE >> level for level in range(7))
    assert len(NODES) == expected


@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_roots_from_stored_nodes(size: int) -> None:
    assert merkle.range_hash(0, size, NODES) == mth(LEAVES[:size])


@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_inclusion_proofs_for_every_leaf(size: int) -> None:
    root = mth(LEAVES[:size])
    for index in range(size):
        ranges = merkle.inclusion_ranges(index, size)
        proof = merkle.hashes_for(ranges, NODES)
        assert proof == reference_path(index, LEAVES[:size])
        # O(log n) stored nodes are enough.
        assert len(merkle.nodes_for(ranges)) <= 2 * size.bit_length()
        assert merkle.verify_inclusion(index, size, LEAVES[index], proof, root)
        # Wrong leaf, wrong index, wrong root, truncated proof: all refused.
        other = LEAVES[(index + 1) % size]
        if size > 1:
            assert not merkle.verify_inclusion(index, size, other, proof, root)
            assert not merkle.verify_inclusion((index + 1) % size, size, LEAVES[index], proof, root)
            assert not merkle.verify_inclusion(index, size, LEAVES[index], proof[:-1], root)
        assert not merkle.verify_inclusion(index, size, LEAVES[index], proof, bytes(32))
        assert not merkle.verify_inclusion(size, size, LEAVES[index], proof, root)


@pytest.mark.parametrize("second", range(1, MAX_SIZE + 1))
def test_consistency_proofs_for_every_pair(second: int) -> None:
    second_root = mth(LEAVES[:second])
    for first in range(1, second + 1):
        first_root = mth(LEAVES[:first])
        ranges = merkle.consistency_ranges(first, second)
        proof = merkle.hashes_for(ranges, NODES)
        expected = [] if first == second else reference_subproof(first, LEAVES[:second], True)
        assert proof == expected
        assert len(merkle.nodes_for(ranges)) <= 2 * second.bit_length()
        assert merkle.verify_consistency(first, second, first_root, second_root, proof)
        # A rewritten history (different first root) or a forged proof is refused.
        assert not merkle.verify_consistency(first, second, bytes(32), second_root, proof)
        if first < second:
            assert not merkle.verify_consistency(first, second, first_root, bytes(32), proof)
            forged = [bytes(32), *proof[1:]]
            assert not merkle.verify_consistency(first, second, first_root, second_root, forged)
            assert not merkle.verify_consistency(first, second, first_root, second_root, [])


def test_rewriting_a_leaf_breaks_consistency() -> None:
    rewritten = list(LEAVES[:20])
    rewritten[3] = merkle.leaf_hash(b"rewritten")
    proof = merkle.hashes_for(merkle.consistency_ranges(10, 20), NODES)
    assert not merkle.verify_consistency(10, 20, mth(rewritten[:10]), mth(LEAVES[:20]), proof)
