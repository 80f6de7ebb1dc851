"""Running one state change: a database transaction, retried on a lost race, then the effects
that must wait for its commit (the Redis status, waking this process's worker). The NOTIFY
that wakes the other workers is sent inside the transaction: PostgreSQL delivers it at
commit.

Every state change of a task goes through ``transact``; the work function receives the
connection inside the transaction and a ``Changes`` collector.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dukenet.orchestration import feedback, status
from dukenet.orchestration.progress import Changes
from dukenet.runtime import Services
from dukenet.store.postgres import Connection, SerializationConflict
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.orchestration", "queries.sql")
READY_CHANNEL = "dukenet_subtasks_ready"  # NOTIFY: READY work appeared; workers LISTEN
T = TypeVar("T")
# A unit of work run by ``transact``: the connection in the transaction, and its changes.
Work = Callable[[Connection, Changes], Awaitable[T]]
# A deadlock between two changes of one task is rare (a cancellation racing a completion);
# the loser is retried from the start.
MAX_TRANSACTION_ATTEMPTS = 5
_background: set[asyncio.Task[None]] = set()  # status writes in flight (kept referenced)


@dataclass(frozen=True)
class Context:
    """Settings the transitions need, taken from the process's services."""

    network_key: Ed25519PrivateKey
    fee_rate: Decimal
    heartbeat_ttl: int
    trust_threshold: Decimal  # agents trusted less are not selected
    retry_base_delay: float
    retry_max_delay: float
    attempt_timeout_floor: float
    attempt_timeout_cap: float

    @classmethod
    def from_services(cls, services: Services) -> Context:
        """The context of this process."""
        settings = services.settings
        return cls(
            network_key=services.network_key,
            fee_rate=settings.platform_fee_rate,
            heartbeat_ttl=settings.heartbeat_ttl,
            trust_threshold=settings.trust_selection_threshold,
            retry_base_delay=settings.retry_base_delay,
            retry_max_delay=settings.retry_max_delay,
            attempt_timeout_floor=settings.attempt_timeout_floor,
            attempt_timeout_cap=settings.attempt_timeout_cap,
        )


async def transact(
    services: Services,
    work: Work[T],
    *,
    on_wake: Callable[[], None] | None = None,
    publish_later: bool = False,
    on_commit: Callable[[], None] | None = None,
) -> T:
    """Run ``work`` in one transaction (again after a deadlock or serialization failure),
    then publish the status snapshots and wake workers if READY work appeared.

    The attempts ``work`` finished are queued for trust in the same transaction and
    recorded after the commit (see ``feedback``).

    With ``publish_later`` the status snapshots go to Redis in the background (they carry
    their version, so a late one never overwrites a newer one): a worker dispatches the
    calls it just claimed without waiting for Redis. ``on_commit`` runs right after the
    commit, before any of that (a recorder starts the calls it claimed).
    """
    for attempt in range(1, MAX_TRANSACTION_ATTEMPTS + 1):
        changes = Changes()
        try:
            async with services.db.transaction() as conn:
                result = await work(conn, changes)
                await feedback.queue(conn, changes.finished)
                if changes.needs_wake:
                    # Delivered to the workers' LISTEN connections at commit (as at
                    # submission): no transaction of its own after this one.
                    await conn.execute(QUERIES["notify_ready"], READY_CHANNEL)
        except SerializationConflict:
            if attempt == MAX_TRANSACTION_ATTEMPTS:
                raise
            await asyncio.sleep(random.uniform(0.005, 0.05) * attempt)
            continue
        if on_commit is not None:
            on_commit()
        if publish_later and not changes.needs_wake:
            if snapshots := changes.snapshots():  # none after a claim that found nothing
                task = asyncio.create_task(status.publish(services.cache, snapshots))
                _background.add(task)
                task.add_done_callback(_background.discard)
        else:
            await after_commit(services, changes, on_wake=on_wake)
        if changes.finished:
            await feedback.after_commit(services, changes.finished)
        return result
    raise AssertionError("unreachable")  # pragma: no cover


async def after_commit(
    services: Services, changes: Changes, *, on_wake: Callable[[], None] | None = None
) -> None:
    """Effects of a committed change: wake this process's worker for new READY work (first:
    latency matters there; other workers got the transaction's NOTIFY), then the status
    snapshots to Redis."""
    if changes.needs_wake and on_wake is not None:
        on_wake()
    await status.publish(services.cache, changes.snapshots())
