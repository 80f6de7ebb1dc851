"""What finished attempts tell the trust score.

The transitions that finish an attempt (a completion, a failure) note a ``FinishedAttempt``
in their ``Changes``; ``record`` then runs at the end of the same transaction (see
``engine.transact``): it records the attempts with ``trust.events.record_attempts`` (one
statement for all of them) and recomputes each agent's score once per transaction, so a
worker's batch of 100 answers from one agent costs one recomputation, not 100. The caller
invalidates the trust caches of the returned agents after the commit.

Trust rows are locked after everything else the transaction locked (subtasks, progress,
tasks) and in agent id order, so two batches touching the same agents cannot deadlock.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from uuid import UUID

from dukenet.config import Settings
from dukenet.errors import DukenetError
from dukenet.orchestration.errors import FailureCode
from dukenet.store.cache import Cache
from dukenet.store.postgres import Connection, SerializationConflict
from dukenet.store.sql import load_queries
from dukenet.trust import events
from dukenet.trust.parameters import TrustParameters

log = logging.getLogger(__name__)
QUERIES = load_queries("dukenet.orchestration", "queries.sql")

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


async def record(
    conn: Connection, cache: Cache, settings: Settings, finished: list[FinishedAttempt]
) -> list[str]:
    """Record the attempts and recompute their agents' trust inside the caller's
    transaction; return the agents whose caches to invalidate after the commit."""
    if not finished:
        return []
    params = TrustParameters.from_settings(settings)
    try:
        async with conn.transaction():  # a savepoint: trust never undoes an attempt's outcome
            return await _record(conn, cache, params, finished)
    except SerializationConflict:
        raise  # a deadlock: the whole transaction is retried
    except DukenetError as exc:
        log.warning("trust of %d attempt(s) not recorded: %s", len(finished), exc.detail)
        return []  # the periodic recomputation catches up on the score


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
