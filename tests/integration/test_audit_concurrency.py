"""Many writers appending at once: a log with no gaps, no duplicates, consistent checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from decimal import Decimal

from dukenet.audit import codec, merkle, trail
from dukenet.audit import log as audit_log
from dukenet.audit.checkpoint import origin_for, verify_checkpoint
from dukenet.runtime import Services

WRITERS = 8
RECORDS = 2_000


async def test_concurrent_writers_produce_a_gapless_consistent_log(services: Services) -> None:
    sequencer = asyncio.create_task(
        audit_log.run_sequencer(services, interval=0.05, checkpoint_interval=0.1)
    )
    written: list[str] = []

    async def writer(number: int) -> None:
        for i in range(RECORDS // WRITERS):
            async with services.db.transaction() as conn:
                written.append(
                    await trail.record_transaction(
                        conn,
                        services.network_key,
                        transaction={
                            "transaction_id": uuid.uuid4(),
                            "buyer_agent_id": f"{number:064x}",
                            "seller_agent_id": f"{i:064x}",
                            "amount": Decimal("1.0000"),
                            "status": "COMPLETED",
                        },
                        status_history=[{"status": "COMPLETED"}],
                        payment_proof={"method": "ledger", "reference": f"{number}-{i}"},
                        completion_proof=None,
                    )
                )

    try:
        await asyncio.gather(*(writer(n) for n in range(WRITERS)))
        async with asyncio.timeout(30):
            while True:
                async with services.db.acquire() as conn:
                    latest = await audit_log.latest_checkpoint(conn)
                if latest.tree_size == RECORDS:
                    break
                await asyncio.sleep(0.05)
    finally:
        sequencer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sequencer

    async with services.db.acquire() as conn:
        leaves = await conn.fetch("SELECT leaf_index, cid FROM audit_log_leaves ORDER BY 1")
        checkpoints = await conn.fetch("SELECT tree_size, note FROM audit_checkpoints ORDER BY 1")
        queued = await conn.fetchval("SELECT count(*) FROM audit_log_queue")
        assert queued == 0
        # Exactly the records written, each once, at indexes 0..n-1.
        assert [r["leaf_index"] for r in leaves] == list(range(RECORDS))
        assert len({r["cid"] for r in leaves}) == RECORDS
        assert {r["cid"] for r in leaves} == set(written)

        # The final root is the RFC 9162 root of the leaves in log order.
        leaf_hashes = [merkle.leaf_hash(codec.cid_bytes(r["cid"])) for r in leaves]
        assert latest.root_hash == merkle.root_from_leaves(leaf_hashes)

        # Several checkpoints were signed while writers ran; every one verifies and is
        # consistent with the next one and with the last one.
        assert len(checkpoints) > 3
        origin = origin_for(services.network_id)
        public = services.network_key.public_key()
        parsed = [verify_checkpoint(r["note"], origin, public) for r in checkpoints]
        for earlier, later in [
            *itertools.pairwise(parsed),
            *((p, parsed[-1]) for p in parsed),
        ]:
            if earlier.tree_size == 0:
                continue
            proof = await audit_log.consistency_proof(conn, earlier.tree_size, later.tree_size)
            assert merkle.verify_consistency(
                earlier.tree_size, later.tree_size, earlier.root_hash, later.root_hash, proof
            )
            assert earlier.root_hash == merkle.root_from_leaves(leaf_hashes[: earlier.tree_size])
