"""The marketplace sweeper: fails PENDING transactions older than the expiry (returning
their holds to the buyers) and forgets idempotency keys past their retention.

Every API process runs it; ``FOR UPDATE SKIP LOCKED`` lets several sweep at once without
waiting on each other or on a party acting on the same transaction.
"""

from __future__ import annotations

import asyncio
import logging

from dukenet.errors import DukenetError
from dukenet.market import escrow, idempotency
from dukenet.runtime import Services
from dukenet.store.postgres import Database
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.market", "queries.sql")
log = logging.getLogger(__name__)


async def expire_pending(db: Database, *, expiry_seconds: float, limit: int = 1000) -> int:
    """Fail up to ``limit`` expired PENDING transactions, one database transaction each."""
    expired = 0
    while expired < limit:
        async with db.transaction() as conn:
            transaction_id = await conn.fetchval(QUERIES["claim_expired"], expiry_seconds)
            if transaction_id is None:
                break
            locked = await escrow.lock_transaction(conn, transaction_id)
            await escrow.release_locked(
                conn,
                locked,
                reason=f"expired: not completed within {int(expiry_seconds)} seconds",
                actor="sweeper",
            )
        expired += 1
    return expired


async def purge_idempotency_keys(db: Database, *, retention_seconds: float) -> int:
    """Delete idempotency records older than ``retention_seconds``."""
    async with db.acquire() as conn:
        return await idempotency.purge(conn, retention_seconds)


def sweep_interval(expiry_seconds: float) -> float:
    """How often to sweep: a tenth of the expiry, between 1 second and 1 minute."""
    return max(1.0, min(60.0, expiry_seconds / 10))


async def market_sweeper(services: Services) -> None:
    """Background job (API processes): sweep until cancelled."""
    settings = services.settings
    while True:
        try:
            expired = await expire_pending(
                services.db, expiry_seconds=settings.transaction_expiry_seconds
            )
            if expired:
                log.info("%d pending transaction(s) expired; holds released", expired)
            await purge_idempotency_keys(
                services.db, retention_seconds=settings.idempotency_retention_seconds
            )
        except DukenetError as exc:
            log.warning("marketplace sweep failed, retrying: %s", exc.detail)
        await asyncio.sleep(sweep_interval(settings.transaction_expiry_seconds))
