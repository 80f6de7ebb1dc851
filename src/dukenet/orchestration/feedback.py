"""What finished attempts tell the trust score.

The transitions that finish an attempt (a completion, a failure) note a ``FinishedAttempt``
in their ``Changes``; ``engine.transact`` queues them in the same transaction (``queue``,
into the ``trust_feedback`` outbox, one statement), and after the commit a trust
``Feeder`` (one per worker) or, in a process without a worker, the committing request
itself (``after_commit``) records them with ``trust.events.record_attempts`` and
recomputes each agent's score once per batch (``drain``): a worker's hundred answers from
one agent cost one recomputation, not a hundred.

Recording trust in the outcome's own transaction held the agent's trust rows locked until
that commit, so the commits of all work done by one agent waited for each other; queued,
an outcome commits at once, and nothing is lost if a process dies before its trust is
recorded: the rows stay queued until a feeder takes them (``FOR UPDATE SKIP LOCKED``, so
each is recorded once; recording is idempotent besides). Trust rows are locked in agent id
order, so two drains touching the same agents cannot deadlock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from uuid import UUID

from dukenet.config import Settings
from dukenet.errors import DukenetError
from dukenet.orchestration.errors import FailureCode
from dukenet.runtime import Services
from dukenet.store.cache import Cache
from dukenet.store.postgres import Connection, SerializationConflict
from dukenet.store.sql import load_queries
from dukenet.trust import events
from dukenet.trust.parameters import TrustParameters

log = logging.getLogger(__name__)
QUERIES = load_queries("dukenet.orchestration", "queries.sql")
DRAIN_BATCH = 500  # queued attempts recorded per transaction
FEEDER_POLL = 1.0  # seconds between a feeder's looks at the queue without a wake-up
# Seconds a woken feeder lets attempts gather before draining them: one recomputation per
# agent then covers the commits of that moment, not each of them (at 200 tasks/s, 0.25 s
# rather than 0.05 s took W2's p50 ready→call from 12-13 to 10 ms: fewer, larger drains).
FEEDER_LINGER = 0.25

# Failures the agent caused: they count against its delivery score.
AGENT_CAUSED = frozenset(
    {
        FailureCode.ATTEMPT_TIMEOUT,
        FailureCode.AGENT_UNREACHABLE,
        FailureCode.AGENT_ERROR,
        FailureCode.INVALID_AGENT_RESPONSE,
        FailureCode.OUTPUT_SCHEMA_VIOLATION,
    }
)
# Attempts that ended without the agent answering for them (not counted at all).
NOT_AN_OUTCOME = frozenset({FailureCode.WORKER_SHUTDOWN, FailureCode.CANCELLED})


# One attempt's outcome as trust sees it; the transitions leave ``declared_p99_ms`` unset
# and ``record`` fills it in from the capability.
FinishedAttempt = events.Attempt


def failed_attempt(
    agent_id: str,
    capability_id: str | None,
    subtask_id: UUID,
    attempt: int,
    code: str,
    latency_ms: int | None,
) -> FinishedAttempt:
    """A failed attempt, blamed on the agent only for the codes in ``AGENT_CAUSED``
    (a rate-limited call, a rejected input, a lost lease or missing funds are not)."""
    outcome = "cancelled" if code in NOT_AN_OUTCOME else "failure"
    return FinishedAttempt(
        agent_id,
        capability_id,
        subtask_id,
        attempt,
        outcome,
        caused_by_agent=code in AGENT_CAUSED,
        latency_ms=latency_ms,
    )


async def queue(conn: Connection, finished: list[FinishedAttempt]) -> None:
    """Queue finished attempts for trust, inside the transaction that finished them."""
    if not finished:
        return
    await conn.execute(QUERIES["queue_feedback"], *events.attempt_columns(finished))


async def drain(
    services: Services,
    *,
    batch: int = DRAIN_BATCH,
    only: list[FinishedAttempt] | None = None,
) -> int:
    """Record up to ``batch`` queued attempts (with ``only``: those of them still queued)
    and recompute their agents' trust, in one transaction; invalidate the trust caches
    after it. Returns how many were taken."""
    async with services.db.transaction() as conn:
        if only is None:
            rows = await conn.fetch(QUERIES["claim_feedback"], batch)
        else:
            rows = await conn.fetch(
                QUERIES["claim_given_feedback"],
                [f.subtask_id for f in only],
                [f.attempt for f in only],
            )
        if not rows:
            return 0
        finished = [
            FinishedAttempt(
                row["agent_id"],
                row["capability_id"],
                row["subtask_id"],
                row["attempt"],
                row["outcome"],
                caused_by_agent=row["caused_by_agent"],
                latency_ms=row["latency_ms"],
                finished_at=row["finished_at"],
            )
            for row in rows
        ]
        trusted = await record(conn, services.cache, services.settings, finished)
    await events.after_commit_invalidate(services.cache, trusted)
    return len(rows)


async def record(
    conn: Connection, cache: Cache, settings: Settings, finished: list[FinishedAttempt]
) -> list[str]:
    """Record the attempts and recompute their agents' trust inside the caller's
    transaction; return the agents whose caches to invalidate after the commit.

    The batch is recorded in a savepoint; if it fails (an attempt whose subtask or agent
    is gone), each attempt is tried alone and only those that fail again are skipped."""
    if not finished:
        return []
    params = TrustParameters.from_settings(settings)
    batches = [finished]
    trusted: list[str] = []
    while batches:
        batch = batches.pop()
        try:
            async with conn.transaction():
                trusted += await _record(conn, cache, params, batch)
        except SerializationConflict:
            raise  # a deadlock: the whole transaction is retried
        except DukenetError as exc:
            if len(batch) > 1:
                batches += [[item] for item in batch]  # find the attempts at fault
                continue
            log.warning(
                "trust of attempt %s/%d not recorded: %s",
                batch[0].subtask_id,
                batch[0].attempt,
                exc.detail,
            )
    return sorted(set(trusted))


class Feeder:
    """A worker's background trust recorder: drains the queue whenever a transaction of
    this process queued attempts (``wake``), and every ``FEEDER_POLL`` seconds for what
    other processes left (one that died before recording its attempts)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start draining; ``after_commit`` in this process now wakes this feeder."""
        _feeders.add(self)
        self._task = asyncio.create_task(self._loop(), name="dukenet-trust-feeder")

    def wake(self) -> None:
        """Attempts were queued: drain now."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop the loop, then record what is still queued (best effort)."""
        _feeders.discard(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(DukenetError):
            await self._drain_all()

    async def _drain_all(self) -> None:
        while await drain(self.services) == DRAIN_BATCH:
            pass

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FEEDER_POLL)
                await asyncio.sleep(FEEDER_LINGER)
            self._wake.clear()
            try:
                await self._drain_all()
            except DukenetError as exc:  # a deadlock or the database: the rows stay queued
                log.warning("trust feedback not recorded yet: %s", exc.detail)
                await asyncio.sleep(FEEDER_POLL)


_feeders: set[Feeder] = set()


async def after_commit(services: Services, finished: list[FinishedAttempt]) -> None:
    """After a commit that queued ``finished``: wake this process's feeders for that
    database, or record those attempts now when the process has none (an API process
    without a worker; what others queued is the workers' to record)."""
    feeders = [f for f in _feeders if f.services.db is services.db]
    if feeders:
        for feeder in feeders:
            feeder.wake()
        return
    try:
        await drain(services, only=finished)
    except DukenetError as exc:
        log.warning("trust feedback left queued for a worker: %s", exc.detail)


async def _record(
    conn: Connection, cache: Cache, params: TrustParameters, finished: list[FinishedAttempt]
) -> list[str]:
    capability_ids = sorted({f.capability_id for f in finished if f.capability_id is not None})
    declared: dict[str, int | None] = {}
    if capability_ids:
        rows = await conn.fetch(QUERIES["declared_latencies"], capability_ids)
        declared = {row["capability_id"]: row["latency_p99_ms"] for row in rows}
    ordered = sorted(finished, key=lambda f: (f.agent_id, f.subtask_id, f.attempt))
    await events.record_attempts(
        conn,
        [replace(item, declared_p99_ms=declared.get(item.capability_id or "")) for item in ordered],
        params,
    )
    agent_ids = sorted({item.agent_id for item in finished})
    for agent_id in agent_ids:
        await events.recompute_trust(conn, cache, agent_id, reason="attempt", params=params)
    return agent_ids
