"""Audit trail: appends/s with 8 concurrent writers, proof latency at 1,000,000 leaves,
checkpoint lag.

1. Appends: 8 writers, each on its own connection, write signed transaction records in
   separate transactions (block + path index + log queue, committed) while the production
   sequencer (0.2 s passes, checkpoint at most every 1 s) integrates them.
2. Checkpoint lag: for every leaf, time from its append (queue insert) to the creation of
   the first signed checkpoint that covers it.
3. Proofs at 1,000,000 leaves: a separate benchmark database gets 1M leaves and their
   2M complete-subtree hashes by COPY, plus a signed checkpoint; then inclusion proofs for
   random leaves are timed server-side (the domain call the endpoint makes: one leaf
   lookup + one O(log n) node read + hashing) and over HTTP (in-process ASGI), and a
   sample is verified against the signed root.

Uses its own databases on the PostgreSQL of ``DUKENET_BENCH_DATABASE_URL`` (an admin URL;
default postgresql://postgres@127.0.0.1:5432/postgres) and drops them afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import libipld

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import report, summarize
from dukenet import crypto
from dukenet.audit import codec, merkle, trail
from dukenet.audit import log as audit_log
from dukenet.audit.checkpoint import origin_for, verify_checkpoint
from dukenet.config import Settings
from dukenet.network import network_id_for
from dukenet.store import migrations
from dukenet.store.postgres import Database

ADMIN_URL = os.environ.get(
    "DUKENET_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("DUKENET_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
_CID_PREFIX = bytes([0x01, 0x71, 0x12, 0x20])


def url_for(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


async def create_database(name: str) -> str:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(url_for(name))
    try:
        await migrations.upgrade(conn)
    finally:
        await conn.close()
    return url_for(name)


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


class _Services:
    """The slice of ``Services`` the sequencer needs."""

    def __init__(self, db: Database, key: Any) -> None:
        self.db = db
        self.network_key = key
        self.network_id = network_id_for(key)


async def bench_appends(url: str, key: Any, records: int, writers: int) -> dict[str, Any]:
    db = await Database.connect(url, min_size=writers + 1, max_size=writers + 1)
    sequencer = asyncio.create_task(audit_log.run_sequencer(_Services(db, key)))
    commit_latencies: list[float] = []

    async def writer(number: int) -> None:
        for i in range(records // writers):
            started = time.perf_counter()
            async with db.transaction() as conn:
                await trail.record_transaction(
                    conn,
                    key,
                    transaction={
                        "transaction_id": uuid.uuid4(),
                        "buyer_agent_id": f"{number:064x}",
                        "seller_agent_id": f"{i + 1:064x}",
                        "transaction_type": "SKILL_RENTAL",
                        "amount": Decimal("1.2500"),
                        "platform_fee": Decimal("0.0313"),
                        "currency": "USD",
                        "status": "COMPLETED",
                    },
                    status_history=[{"status": "PENDING"}, {"status": "COMPLETED"}],
                    payment_proof={"method": "ledger", "reference": f"{number}-{i}"},
                    completion_proof={"subtask_id": str(uuid.uuid4())},
                )
            commit_latencies.append((time.perf_counter() - started) * 1000)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(writer(n) for n in range(writers)))
        committed = time.perf_counter() - started
        total = (records // writers) * writers
        while True:
            async with db.acquire() as conn:
                if (await audit_log.latest_checkpoint(conn)).tree_size >= total:
                    break
            await asyncio.sleep(0.01)
        checkpointed = time.perf_counter() - started
    finally:
        sequencer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sequencer
    async with db.acquire() as conn:
        lags = await conn.fetch(
            """
            SELECT EXTRACT(EPOCH FROM (
                     SELECT MIN(c.created_at) FROM audit_checkpoints c
                     WHERE c.tree_size > l.leaf_index) - l.queued_at) * 1000 AS lag_ms
            FROM audit_log_leaves l
            """
        )
        distinct = await conn.fetchval("SELECT COUNT(DISTINCT cid) FROM audit_log_leaves")
        checkpoints = await conn.fetchval("SELECT COUNT(*) FROM audit_checkpoints")
    await db.close()
    assert distinct == total, (distinct, total)
    return {
        "records": total,
        "writers": writers,
        "appends_per_second": total / committed,
        "appends_per_second_until_checkpointed": total / checkpointed,
        "commit_latency_ms": summarize(commit_latencies),
        "checkpoint_lag_ms": summarize([float(r["lag_ms"]) for r in lags]),
        "checkpoints_signed": checkpoints,
    }


def build_tree(size: int) -> tuple[list[str], dict[merkle.NodeKey, bytes]]:
    """``size`` synthetic record CIDs and every complete-subtree hash over them."""
    cids: list[str] = []
    hashes: list[bytes] = []
    for i in range(size):
        raw = _CID_PREFIX + hashlib.sha256(i.to_bytes(8, "big")).digest()
        cids.append(libipld.encode_cid(raw))
        hashes.append(merkle.leaf_hash(raw))
    return cids, merkle.appended_nodes(0, hashes, {})


async def bench_proofs(url: str, key: Any, size: int, samples: int) -> dict[str, Any]:
    started = time.perf_counter()
    cids, nodes = build_tree(size)
    computed = time.perf_counter() - started
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        moment = datetime.now(UTC)
        await conn.copy_records_to_table(
            "audit_log_leaves",
            records=((i, cid, moment, moment) for i, cid in enumerate(cids)),
            columns=["leaf_index", "cid", "queued_at", "integrated_at"],
        )
        await conn.copy_records_to_table(
            "audit_log_nodes",
            records=((level, idx, value) for (level, idx), value in nodes.items()),
            columns=["level", "idx", "hash"],
        )
        await conn.execute("ANALYZE audit_log_leaves")
        await conn.execute("ANALYZE audit_log_nodes")
        loaded = time.perf_counter() - started
        stored = await audit_log.sign_checkpoint_for(conn, key, network_id_for(key), size)
    finally:
        await conn.close()
    del nodes

    checkpoint = verify_checkpoint(stored.note, origin_for(network_id_for(key)), key.public_key())
    db = await Database.connect(url, min_size=1, max_size=2)
    picks = [random.randrange(size) for _ in range(samples)]
    server_side: list[float] = []
    consistency: list[float] = []
    reads: list[int] = []
    async with db.acquire() as conn:
        for _ in range(50):  # warm the connection's prepared statements
            await audit_log.inclusion_proof(conn, cids[random.randrange(size)], size)
        for index in picks:
            started = time.perf_counter()
            proof = await audit_log.inclusion_proof(conn, cids[index], size)
            server_side.append((time.perf_counter() - started) * 1000)
            reads.append(len(merkle.nodes_for(merkle.inclusion_ranges(index, size))))
        for index in picks[:200]:
            proof = await audit_log.inclusion_proof(conn, cids[index], size)
            leaf = merkle.leaf_hash(codec.cid_bytes(cids[index]))
            assert merkle.verify_inclusion(index, size, leaf, proof.hashes, checkpoint.root_hash)
        for _ in range(samples):
            first = random.randrange(1, size)
            started = time.perf_counter()
            await audit_log.consistency_proof(conn, first, size)
            consistency.append((time.perf_counter() - started) * 1000)
    await db.close()

    http_latencies = await bench_http(url, key, [cids[i] for i in picks[:1000]], size, checkpoint)
    return {
        "tree_size": size,
        "build_seconds": {"hashing": computed, "copy_and_analyze": loaded},
        "inclusion_proof_server_ms": summarize(server_side),
        "inclusion_proof_node_reads": summarize([float(r) for r in reads]),
        "consistency_proof_server_ms": summarize(consistency),
        "inclusion_proof_http_ms": summarize(http_latencies),
        "verified_against_signed_root": 200,
    }


async def bench_http(
    url: str, key: Any, cids: list[str], size: int, checkpoint: Any
) -> list[float]:
    """Inclusion proofs through the real app in-process (routing, JSON, problem handling)."""
    from dukenet.api.app import create_app

    settings = Settings(
        database_url=url,
        redis_url=REDIS_URL,
        redis_prefix=f"bench-audit-{os.getpid()}:",
        network_key=crypto.private_key_to_b64(key),
        data_dir=Path("/tmp") / f"bench-audit-{os.getpid()}",
        pool_min_size=1,
        pool_max_size=4,
    )
    app = create_app(settings)
    latencies: list[float] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            for cid in cids:
                started = time.perf_counter()
                response = await http.get(
                    "/v1/audit/proof/inclusion", params={"cid": cid, "tree_size": size}
                )
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
            body = response.json()
            leaf = merkle.leaf_hash(codec.cid_bytes(cids[-1]))
            hashes = [base64.b64decode(h) for h in body["hashes"]]
            assert merkle.verify_inclusion(
                body["leaf_index"], size, leaf, hashes, checkpoint.root_hash
            )
    return latencies


async def run(args: argparse.Namespace) -> None:
    key = crypto.generate_private_key()
    suffix = f"{os.getpid()}"
    appends_db, proofs_db = (
        f"dukenet_bench_audit_appends_{suffix}",
        f"dukenet_bench_audit_proofs_{suffix}",
    )
    try:
        appends = await bench_appends(
            await create_database(appends_db), key, args.records, args.writers
        )
        await drop_database(appends_db)
        proofs = await bench_proofs(
            await create_database(proofs_db), key, args.leaves, args.samples
        )
    finally:
        await drop_database(appends_db)
        await drop_database(proofs_db)

    rows = [
        ["appends/s, 8 writers (committed)", f"{appends['appends_per_second']:,.0f}", ">= 2,000"],
        [
            "appends/s until checkpointed",
            f"{appends['appends_per_second_until_checkpointed']:,.0f}",
            "",
        ],
        ["commit latency p99 (ms)", f"{appends['commit_latency_ms']['p99']:.2f}", ""],
        ["checkpoint lag p50 (ms)", f"{appends['checkpoint_lag_ms']['p50']:.0f}", ""],
        ["checkpoint lag p99 (ms)", f"{appends['checkpoint_lag_ms']['p99']:.0f}", "few seconds"],
        [
            f"inclusion proof p99 at {proofs['tree_size']:,} leaves, server-side (ms)",
            f"{proofs['inclusion_proof_server_ms']['p99']:.2f}",
            "<= 5",
        ],
        [
            "inclusion proof p50, server-side (ms)",
            f"{proofs['inclusion_proof_server_ms']['p50']:.2f}",
            "",
        ],
        [
            "stored nodes read per proof (max)",
            f"{proofs['inclusion_proof_node_reads']['max']:.0f}",
            "O(log n)",
        ],
        [
            "consistency proof p99, server-side (ms)",
            f"{proofs['consistency_proof_server_ms']['p99']:.2f}",
            "",
        ],
        [
            "inclusion proof p99 over HTTP, in-process (ms)",
            f"{proofs['inclusion_proof_http_ms']['p99']:.2f}",
            "",
        ],
    ]
    report(
        "audit",
        "Audit trail",
        ["metric", "value", "target"],
        rows,
        {"appends": appends, "proofs": proofs, "parameters": vars(args)},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000, help="records appended")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--leaves", type=int, default=1_000_000, help="tree size for proofs")
    parser.add_argument("--samples", type=int, default=5_000, help="proofs timed")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
