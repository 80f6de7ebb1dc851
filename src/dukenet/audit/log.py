"""The append-only Merkle log: queue, sequencer, stored subtree hashes, proofs, checkpoints.

Writers append a record CID by inserting it into ``audit_log_queue`` inside their own
transaction (no lock, so many writers never wait on each other). One sequencer at a time
(a transaction-level advisory lock; every API process runs one, the others skip) takes
the committed queue in order, gives the CIDs the next leaf indexes, stores the leaf and
complete-subtree hashes and deletes the queue rows, all in one transaction: no gaps, no
duplicates. It signs a checkpoint whenever the tree grew and the last one is older than
the checkpoint interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dukenet.audit import merkle
from dukenet.audit.checkpoint import Checkpoint, origin_for, sign_checkpoint
from dukenet.audit.codec import canonical_cid, cid_bytes
from dukenet.audit.errors import CheckpointNotFound, InvalidTreeSize, LeafNotFound
from dukenet.errors import DukenetError
from dukenet.store.postgres import Connection, Database, translate_errors
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.audit", "queries.sql")
log = logging.getLogger(__name__)

# Advisory lock namespace (first int of the two-int form) for audit locks: per-path writer
# locks use (AUDIT_LOCK_NAMESPACE, hashtext(path)), the sequencer (SEQUENCER_NAMESPACE, 0).
AUDIT_LOCK_NAMESPACE = 0x61756469  # "audi"
SEQUENCER_NAMESPACE = 0x61756473  # "auds"
MAX_BATCH = 10_000
MAX_ENTRIES = 1_000


class LogServices(Protocol):
    """What the sequencer job needs from the process (``dukenet.runtime.Services`` fits)."""

    db: Database
    network_key: Ed25519PrivateKey
    network_id: str


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint as stored."""

    tree_size: int
    root_hash: bytes
    note: str
    created_at: datetime


@dataclass(frozen=True)
class InclusionProof:
    """Where a CID sits in the tree of ``tree_size`` leaves, and the path to the root."""

    cid: str
    leaf_index: int
    tree_size: int
    hashes: list[bytes]


@dataclass(frozen=True)
class IntegrationResult:
    """What one sequencer pass did."""

    integrated: int
    tree_size: int
    checkpoint: StoredCheckpoint | None


def leaf_data(cid: str) -> bytes:
    """The leaf data of a record: its binary CID."""
    return cid_bytes(cid)


async def fetch_nodes(
    conn: Connection, keys: Iterable[merkle.NodeKey]
) -> dict[merkle.NodeKey, bytes]:
    """Stored subtree hashes for ``keys`` in one query."""
    wanted = list(keys)
    if not wanted:
        return {}
    with translate_errors():
        rows = await conn.fetch(
            QUERIES["get_nodes"], [k[0] for k in wanted], [k[1] for k in wanted]
        )
    found = {(r["level"], r["idx"]): bytes(r["hash"]) for r in rows}
    if len(found) != len(set(wanted)):
        raise DukenetError("the audit log is missing stored subtree hashes")
    return found


async def tree_size(conn: Connection) -> int:
    """The number of leaves integrated so far."""
    with translate_errors():
        size: int = await conn.fetchval(QUERIES["tree_size"])
    return size


async def root_hash(conn: Connection, size: int) -> bytes:
    """The root hash of the tree of the first ``size`` leaves."""
    nodes = await fetch_nodes(conn, merkle.subtrees(0, size))
    return merkle.range_hash(0, size, nodes)


def _checkpoint(row: asyncpg.Record) -> StoredCheckpoint:
    return StoredCheckpoint(
        row["tree_size"], bytes(row["root_hash"]), row["note"], row["created_at"]
    )


async def latest_checkpoint(conn: Connection) -> StoredCheckpoint:
    """The newest signed checkpoint; ``CheckpointNotFound`` before the first one."""
    with translate_errors():
        row = await conn.fetchrow(QUERIES["latest_checkpoint"])
    if row is None:
        raise CheckpointNotFound("the log has no signed checkpoint yet")
    return _checkpoint(row)


async def checkpoint_at(conn: Connection, size: int) -> StoredCheckpoint:
    """The signed checkpoint for tree size ``size``."""
    with translate_errors():
        row = await conn.fetchrow(QUERIES["checkpoint_at"], size)
    if row is None:
        raise CheckpointNotFound(f"no checkpoint was signed at tree size {size}")
    return _checkpoint(row)


async def _check_size(conn: Connection, size: int, name: str) -> None:
    current = await tree_size(conn)
    if size < 1 or size > current:
        raise InvalidTreeSize(f"{name} must be between 1 and the tree size {current}", field=name)


async def inclusion_proof(conn: Connection, cid: str, size: int | None = None) -> InclusionProof:
    """The inclusion proof of ``cid`` in the tree of ``size`` leaves (default: latest
    checkpoint). Reads O(log n) stored hashes."""
    cid = canonical_cid(cid)
    if size is None:
        size = (await latest_checkpoint(conn)).tree_size
    else:
        await _check_size(conn, size, "tree_size")
    with translate_errors():
        index = await conn.fetchval(QUERIES["leaf_by_cid"], cid)
    if index is None:
        raise LeafNotFound(f"{cid} is not in the log yet")
    if index >= size:
        raise LeafNotFound(f"{cid} is leaf {index}, outside the tree of size {size}")
    ranges = merkle.inclusion_ranges(index, size)
    nodes = await fetch_nodes(conn, merkle.nodes_for(ranges))
    return InclusionProof(cid, index, size, merkle.hashes_for(ranges, nodes))


async def consistency_proof(conn: Connection, first: int, second: int) -> list[bytes]:
    """The proof that the tree of ``second`` leaves extends the tree of ``first`` leaves."""
    await _check_size(conn, second, "second")
    if first < 1 or first > second:
        raise InvalidTreeSize("first must be between 1 and second", field="first")
    ranges = merkle.consistency_ranges(first, second)
    nodes = await fetch_nodes(conn, merkle.nodes_for(ranges))
    return merkle.hashes_for(ranges, nodes)


async def entries(conn: Connection, start: int, end: int) -> list[asyncpg.Record]:
    """Leaves ``[start, end)`` (at most ``MAX_ENTRIES``)."""
    if start < 0 or end < start:
        raise InvalidTreeSize("need 0 <= start <= end", field="start")
    end = min(end, start + MAX_ENTRIES)
    with translate_errors():
        rows: list[asyncpg.Record] = await conn.fetch(QUERIES["entries"], start, end)
    return rows


async def _integrate_pending(conn: Connection, max_batch: int) -> tuple[int, int]:
    """Move up to ``max_batch`` queued CIDs into the tree; return (integrated, new size)."""
    size = await tree_size(conn)
    pending = await conn.fetch(QUERIES["pending_entries"], max_batch)
    if not pending:
        return 0, size
    cids = [r["cid"] for r in pending]
    already = {r["cid"] for r in await conn.fetch(QUERIES["existing_leaves"], cids)}
    leaves: list[tuple[int, str, datetime]] = []
    for row in pending:
        if row["cid"] in already:
            continue  # never a duplicate leaf
        already.add(row["cid"])
        leaves.append((size + len(leaves), row["cid"], row["queued_at"]))
    if leaves:
        frontier = await fetch_nodes(conn, merkle.subtrees(0, size))
        hashes = [merkle.leaf_hash(leaf_data(cid)) for _, cid, _ in leaves]
        created = merkle.appended_nodes(size, hashes, frontier)
        await conn.copy_records_to_table(
            "audit_log_leaves", records=leaves, columns=["leaf_index", "cid", "queued_at"]
        )
        await conn.copy_records_to_table(
            "audit_log_nodes",
            records=[(level, idx, value) for (level, idx), value in created.items()],
            columns=["level", "idx", "hash"],
        )
    await conn.execute(QUERIES["delete_pending"], [r["queue_id"] for r in pending])
    return len(leaves), size + len(leaves)


async def sign_checkpoint_for(
    conn: Connection, key: Ed25519PrivateKey, network_id: str, size: int
) -> StoredCheckpoint:
    """Sign and store the checkpoint for the tree of ``size`` leaves."""
    root = await root_hash(conn, size)
    origin = origin_for(network_id)
    note = sign_checkpoint(Checkpoint(origin, size, root), key, origin)
    with translate_errors():
        await conn.execute(QUERIES["insert_checkpoint"], size, root, note)
    return await checkpoint_at(conn, size)


async def integrate(
    db: Database,
    key: Ed25519PrivateKey,
    network_id: str,
    *,
    max_batch: int = MAX_BATCH,
    checkpoint_interval: float = 1.0,
) -> IntegrationResult | None:
    """One sequencer pass; ``None`` when another process holds the sequencer lock."""
    async with db.transaction() as conn:
        if not await conn.fetchval(QUERIES["try_sequencer_lock"], SEQUENCER_NAMESPACE):
            return None
        integrated, size = await _integrate_pending(conn, max_batch)
        with translate_errors():
            latest = await conn.fetchrow(QUERIES["latest_checkpoint"])
        checkpoint = None
        due = latest is None or (
            latest["tree_size"] < size
            and time.time() - latest["created_at"].timestamp() >= checkpoint_interval
        )
        if due:
            checkpoint = await sign_checkpoint_for(conn, key, network_id, size)
        return IntegrationResult(integrated, size, checkpoint)


async def run_sequencer(
    services: LogServices,
    *,
    interval: float = 0.2,
    checkpoint_interval: float = 1.0,
    max_batch: int = MAX_BATCH,
) -> None:
    """Background job: integrate queued appends and sign checkpoints until cancelled."""
    failures = 0
    while True:
        try:
            result = await integrate(
                services.db,
                services.network_key,
                services.network_id,
                max_batch=max_batch,
                checkpoint_interval=checkpoint_interval,
            )
            failures = 0
            if result is not None and result.integrated >= max_batch:
                continue  # more is waiting: go on at once
        except DukenetError as exc:
            failures += 1
            log.warning("audit sequencer pass failed (%s), retrying", exc.detail)
        except Exception:  # a bug must not stop checkpoints for good: log it and go on
            failures += 1
            log.exception("audit sequencer pass crashed, retrying")
        await asyncio.sleep(min(interval * 2**failures, 30.0))
