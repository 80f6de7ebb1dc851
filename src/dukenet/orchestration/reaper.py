"""Sweeps every worker runs: attempts whose lease expired (their worker died or hung) go
back to READY, counting the attempt; tasks past their deadline fail ``DEADLINE_EXCEEDED``.

Each item is its own transaction, fenced like everything else, so several workers can
sweep at once: whoever comes second finds nothing left to do.
"""

from __future__ import annotations

import logging
from uuid import UUID

from dukenet.orchestration.engine import Context, Work, transact
from dukenet.orchestration.errors import FailureCode, TaskFinished
from dukenet.orchestration.lifecycle import end_task
from dukenet.orchestration.outcomes import Failure, fail_attempt
from dukenet.orchestration.progress import Changes
from dukenet.runtime import Services
from dukenet.store.postgres import Connection
from dukenet.store.sql import load_queries

log = logging.getLogger(__name__)
QUERIES = load_queries("dukenet.orchestration", "queries.sql")
LEASE_EXPIRED = Failure(
    FailureCode.LEASE_EXPIRED,
    "the worker running this attempt stopped renewing its lease",
    retryable=True,
    timed_out=True,
)


async def reap_expired_leases(services: Services, context: Context, *, limit: int = 200) -> int:
    """Return up to ``limit`` attempts with an expired lease to READY (or fail them)."""
    async with services.db.acquire() as conn:
        expired = await conn.fetch(QUERIES["expired_leases"], limit)
    reaped = 0
    for row in expired:
        if await transact(services, _reap(context, row["subtask_id"], row["attempt"])):
            reaped += 1
    if reaped:
        log.info("returned %d attempts with expired leases", reaped)
    return reaped


async def fail_overdue_tasks(services: Services, context: Context, *, limit: int = 100) -> int:
    """Fail up to ``limit`` unfinished tasks whose deadline passed."""
    async with services.db.acquire() as conn:
        overdue = await conn.fetch(QUERIES["overdue_tasks"], limit)
    failed = 0
    for row in overdue:
        try:
            await transact(services, _expire(context, row["task_id"]))
            failed += 1
        except TaskFinished:
            pass  # it ended meanwhile
    return failed


def _reap(context: Context, subtask_id: UUID, attempt: int) -> Work[bool]:
    async def work(conn: Connection, changes: Changes) -> bool:
        return await fail_attempt(
            conn, context, changes, subtask_id, attempt, LEASE_EXPIRED, only_if_lease_expired=True
        )

    return work


def _expire(context: Context, task_id: UUID) -> Work[None]:
    async def work(conn: Connection, changes: Changes) -> None:
        await end_task(
            conn,
            context,
            changes,
            task_id,
            status="FAILED",
            code=FailureCode.DEADLINE_EXCEEDED,
            message="the task's deadline passed",
        )

    return work
