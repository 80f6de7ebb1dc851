"""The trust events other domains call: record a finished attempt, recompute a score.

Orchestration queues finished attempts in the transaction that finishes them (the
``trust_feedback`` outbox, migration 0017) and records them after that commit, in a
transaction of its own (``orchestration.feedback.drain``)::

    async with db.transaction() as conn:
        ...  # claim queued attempts
        await events.record_attempts(conn, [Attempt(agent_id, capability_id, subtask_id,
                                                    attempt, "failure", True, latency_ms,
                                                    declared_p99_ms, finished_at)])
        await events.recompute_trust(conn, cache, agent_id, reason="attempt")
    await events.after_commit_invalidate(cache, [agent_id])

Registry events (heartbeat expiry and revival, suspension, reinstatement) reach trust
through an outbox that a trigger fills in the registry's own transaction (migration 0010);
``run_event_consumer`` recomputes them. Ratings, fraud flags and owner proofs recompute
directly in their own transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from dukenet.errors import DukenetError, InvalidInput
from dukenet.runtime import Services
from dukenet.store.cache import Cache
from dukenet.store.postgres import Connection, Database, translate_errors
from dukenet.store.sql import load_queries
from dukenet.trust import agent_scores, fraud
from dukenet.trust.cache import after_commit_invalidate
from dukenet.trust.errors import AgentNotFound
from dukenet.trust.models import FraudFlag
from dukenet.trust.parameters import (
    LATENCY_BUCKETS,
    LATENCY_GROWTH,
    TrustParameters,
    default_parameters,
)

__all__ = [
    "OUTCOMES",
    "Attempt",
    "after_commit_invalidate",
    "clear_fraud_flag",
    "note_rate_limited",
    "recompute_and_publish",
    "recompute_trust",
    "record_attempt",
    "record_attempts",
    "run_event_consumer",
]

QUERIES = load_queries("dukenet.trust", "queries.sql")
OUTCOMES = frozenset({"success", "failure", "cancelled"})
EVENT_CHANNEL = "dukenet_trust_events"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attempt:
    """A finished attempt as trust records it (see ``record_attempts``)."""

    agent_id: str
    capability_id: str | None
    subtask_id: UUID
    attempt: int
    outcome: str  # success, failure or cancelled
    caused_by_agent: bool
    latency_ms: int | None
    declared_p99_ms: int | None = None  # the capability's declared p99, when it has one
    finished_at: datetime | None = None  # when the attempt ended (None: now)


def attempt_columns(attempts: list[Attempt]) -> list[list[Any]]:
    """The attempts as parallel arrays: subtask ids, attempt numbers, agent ids, capability
    ids, outcomes, whether the agent caused them, latencies (``record_attempts``' $1-$7)."""
    return [
        [a.subtask_id for a in attempts],
        [a.attempt for a in attempts],
        [a.agent_id for a in attempts],
        [a.capability_id for a in attempts],
        [a.outcome for a in attempts],
        [a.caused_by_agent for a in attempts],
        [a.latency_ms for a in attempts],
    ]


async def record_attempts(
    conn: Connection, attempts: list[Attempt], params: TrustParameters | None = None
) -> None:
    """Record finished attempts inside the caller's transaction, in one statement
    (idempotent per attempt).

    An outcome is ``success``, ``failure`` or ``cancelled``; a failure counts against the
    agent only when ``caused_by_agent`` (timeout, 5xx, schema violation). Raises fraud flags
    for self-dealing and failure bursts (a burst is judged on each agent's counters after
    the whole statement); the caller then calls ``recompute_trust`` for each agent.
    """
    if not attempts:
        return
    first: dict[tuple[UUID, int], Attempt] = {}
    for item in attempts:
        first.setdefault((item.subtask_id, item.attempt), item)  # a repeat records nothing
    attempts = list(first.values())
    for item in attempts:
        if item.outcome not in OUTCOMES:
            raise InvalidInput(f"outcome must be one of {sorted(OUTCOMES)}", field="/outcome")
    params = params or default_parameters()
    with translate_errors():
        rows = await conn.fetch(
            QUERIES["record_attempts"],
            *attempt_columns(attempts),
            [a.declared_p99_ms for a in attempts],
            params.burst_window_seconds,
            LATENCY_BUCKETS,
            LATENCY_GROWTH,
            [a.finished_at for a in attempts],
        )
    bursts: dict[str, tuple[fraud.BurstCounts, float]] = {}
    for item, recorded in zip(attempts, rows, strict=True):
        if not recorded["known"]:
            raise InvalidInput(
                f"no subtask {item.subtask_id} or agent {item.agent_id}", field="/subtask_id"
            )
        if recorded["at"] is None:
            continue  # this attempt was recorded before
        buyer = recorded["buyer"]
        if (
            item.outcome == "success"
            and buyer != item.agent_id
            and fraud.same_owner(recorded["seller_owner"], recorded["buyer_owner"])
        ):
            await fraud.flag_self_dealing(conn, item.agent_id, buyer, recorded["seller_owner"])
        if item.outcome == "failure" and item.caused_by_agent:
            counts = fraud.BurstCounts(
                window=recorded["burst_window"],
                failures=recorded["burst_failures"],
                attempts=recorded["burst_attempts"],
                previous_failures=recorded["prev_failures"],
                previous_attempts=recorded["prev_attempts"],
            )
            bursts[item.agent_id] = (counts, recorded["at"])
    for agent_id, (counts, at) in sorted(bursts.items()):
        failures, total = fraud.burst_estimate(counts, at, params)
        if fraud.is_burst(failures, total, params):
            await fraud.flag_failure_burst(conn, agent_id, counts, failures, total)


async def record_attempt(
    conn: Connection,
    *,
    agent_id: str,
    capability_id: str | None,
    subtask_id: UUID,
    attempt: int,
    outcome: str,
    caused_by_agent: bool,
    latency_ms: int | None,
    declared_p99_ms: int | None,
    params: TrustParameters | None = None,
) -> None:
    """Record one finished attempt (``record_attempts`` with one element)."""
    item = Attempt(
        agent_id,
        capability_id,
        subtask_id,
        attempt,
        outcome,
        caused_by_agent,
        latency_ms,
        declared_p99_ms,
    )
    await record_attempts(conn, [item], params)


async def recompute_trust(
    conn: Connection,
    cache: Cache,
    agent_id: str,
    *,
    reason: str,
    params: TrustParameters | None = None,
) -> Decimal:
    """Recompute one agent's score inside the caller's transaction and return it.

    Appends a trust record (every column filled, ``reason`` noted) and sets
    ``agents.trust_score``. The agent's row stays locked until the caller commits, so
    concurrent recomputations of one agent apply in order. After committing, the caller
    calls ``after_commit_invalidate(cache, [agent_id])`` (``cache`` is accepted here so
    callers hold everything they need in one place).
    """
    del cache  # invalidation happens after the caller's commit
    evidence = await agent_scores.gather(conn, agent_id, params or default_parameters())
    await agent_scores.store(conn, evidence, reason)
    return evidence.trust_score


async def recompute_and_publish(
    db: Database,
    cache: Cache,
    agent_id: str,
    *,
    reason: str,
    params: TrustParameters | None = None,
) -> Decimal:
    """Recompute one agent's score in a transaction of its own, then invalidate caches."""
    async with db.transaction() as conn:
        score = await recompute_trust(conn, cache, agent_id, reason=reason, params=params)
    await after_commit_invalidate(cache, [agent_id])
    return score


async def clear_fraud_flag(
    db: Database, cache: Cache, flag_id: int, reason: str, params: TrustParameters
) -> FraudFlag:
    """Operator: clear a fraud flag (its evidence is never re-raised) and recompute."""
    async with db.transaction() as conn:
        flag = await fraud.clear_flag_row(conn, flag_id, reason)
        await recompute_trust(conn, cache, flag.agent_id, reason="flag_cleared", params=params)
    await after_commit_invalidate(cache, [flag.agent_id])
    return flag


async def note_rate_limited(db: Database, cache: Cache, agent_id: str) -> None:
    """Remember that ``agent_id`` was refused with 429 (the ``rate_limited`` penalty applies
    for 24 h from the next recomputation). Written at most once a minute per agent; never
    raises, so a 429 stays a 429."""
    try:
        async with cache.guard() as client:
            first = await client.set(
                cache.key("trust", "ratelimited", agent_id), b"1", nx=True, ex=60
            )
        if not first:
            return
        async with db.acquire() as conn:
            await conn.execute(QUERIES["note_rate_limited"], agent_id)
    except DukenetError as exc:
        log.warning("could not note that %s was rate limited: %s", agent_id, exc.detail)


async def process_pending_events(
    db: Database, cache: Cache, params: TrustParameters, *, batch: int = 100
) -> int:
    """Recompute the agents of queued registry events (one transaction); return how many
    events were handled."""
    async with db.transaction() as conn:
        rows = await conn.fetch(QUERIES["claim_pending_events"], batch)
        reasons: dict[str, str] = {}
        for row in rows:
            reasons[row["agent_id"]] = row["reason"]  # the latest event names the record
        recomputed = []
        for agent_id, reason in reasons.items():
            try:
                async with conn.transaction():  # a savepoint: one bad agent skips only itself
                    await recompute_trust(conn, cache, agent_id, reason=reason, params=params)
            except AgentNotFound:
                continue  # deregistered since
            except DukenetError as exc:
                log.warning("trust recomputation of %s failed: %s", agent_id, exc.detail)
                continue  # the periodic recomputation catches up
            recomputed.append(agent_id)
    await after_commit_invalidate(cache, recomputed)
    return len(rows)


async def run_event_consumer(services: Services) -> None:
    """Background job: recompute trust for registry events as they are queued (NOTIFY),
    polling every few seconds as a fallback, until cancelled."""
    params = TrustParameters.from_settings(services.settings)
    wake = asyncio.Event()

    def notified(*_: object) -> None:
        wake.set()

    while True:
        try:
            async with services.db.acquire() as listener:
                await listener.add_listener(EVENT_CHANNEL, notified)
                try:
                    while True:
                        while await process_pending_events(services.db, services.cache, params):
                            pass
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(wake.wait(), timeout=5.0)
                        wake.clear()
                finally:
                    with contextlib.suppress(asyncpg.InterfaceError, DukenetError, OSError):
                        await listener.remove_listener(EVENT_CHANNEL, notified)
        except DukenetError as exc:
            log.warning("trust event consumer failed, retrying: %s", exc.detail)
            await asyncio.sleep(2.0)
