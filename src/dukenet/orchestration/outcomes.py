"""What happens when an attempt fails (retry with backoff, or fail the subtask and its task),
is accepted as a long job (202), or answers too late. Completions are in ``completion``.

Every function is fenced by ``(subtask_id, attempt)``: it acts only while that attempt
still holds the subtask (status RUNNING with that attempt number), so a late answer from
an attempt whose lease expired and was re-claimed changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from dukenet.orchestration import backoff, feedback
from dukenet.orchestration.engine import Context
from dukenet.orchestration.errors import FailureCode
from dukenet.orchestration.lifecycle import FailedSubtask, end_task, release_hold
from dukenet.orchestration.progress import ZERO, Changes, lock_before_payment
from dukenet.store.postgres import Connection, Record
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.orchestration", "queries.sql")


@dataclass(frozen=True)
class Failure:
    """Why an attempt failed, and whether it may be retried."""

    code: str
    message: str
    retryable: bool
    timed_out: bool = False
    retry_after: float | None = None
    counts: bool = True  # whether it uses up one of the subtask's retries
    task_code: str | None = None  # the task's error_code if this ends it (SUBTASK_FAILED)
    latency_ms: int | None = None  # how long the call took, when the agent was called


async def _running(conn: Connection, subtask_id: UUID, attempt: int) -> Record | None:
    row: Record | None = await conn.fetchrow(QUERIES["running_attempt"], subtask_id, attempt)
    return row


async def fail_attempt(
    conn: Connection,
    context: Context,
    changes: Changes,
    subtask_id: UUID,
    attempt: int,
    failure: Failure,
    *,
    only_if_lease_expired: bool = False,
) -> bool:
    """Record a failed attempt: retry after a backoff, or fail the subtask and its task.
    False when the attempt no longer holds the subtask (or, for the reaper, its lease was
    renewed in the meantime)."""
    row = await _running(conn, subtask_id, attempt)
    if row is None:
        return False
    if only_if_lease_expired:
        if row["lease_expires_at"] is None or row["lease_expires_at"] > datetime.now(UTC):
            return False
        if row["claimed_by"] is None:  # accepted with 202: the agent never posted a result
            failure = Failure(
                FailureCode.ATTEMPT_TIMEOUT,
                "the agent accepted the job but posted no result within the attempt's timeout",
                retryable=True,
                timed_out=True,
            )
    await _fail_locked(conn, context, changes, row, failure)
    return True


async def _fail_locked(
    conn: Connection, context: Context, changes: Changes, row: Record, failure: Failure
) -> None:
    task_id: UUID = row["parent_task_id"]
    subtask_id: UUID = row["subtask_id"]
    agent_id = row["assigned_agent_id"]
    if agent_id is not None:
        changes.finished.append(
            feedback.failed_attempt(
                agent_id,
                row["capability_id"],
                subtask_id,
                row["attempt"],
                failure.code,
                failure.latency_ms,
            )
        )
    if failure.timed_out:
        changes.log(
            task_id,
            subtask_id,
            "TIMEOUT",
            failure.message,
            failure.code,
            attempt=row["attempt"],
            agent_id=agent_id,
        )
    counted = 1 if failure.counts else 0
    failures = row["failures"] + counted
    if failure.retryable and failures <= row["max_retries"]:
        delay = backoff.retry_delay(
            row["backoff_strategy"],
            max(1, failures),
            base=context.retry_base_delay if failure.counts else 0.0,
            maximum=context.retry_max_delay,
        )
        delay = max(delay, failure.retry_after or 0.0)
        deadline: datetime | None = row["deadline"]
        if deadline is None or datetime.now(UTC) + timedelta(seconds=delay) < deadline:
            await _retry(conn, changes, row, failure, counted, delay)
            return
        failure_message = f"{failure.message}; the next attempt would start after the deadline"
        task_code: str = FailureCode.DEADLINE_EXCEEDED
    else:
        failure_message = failure.message
        task_code = failure.task_code or FailureCode.SUBTASK_FAILED
    await end_task(
        conn,
        context,
        changes,
        task_id,
        status="FAILED",
        code=task_code,
        message=f"subtask {row['name']!r} failed: {failure.code}: {failure_message}",
        failed_subtask=FailedSubtask(
            subtask_id,
            failure.code,
            failure_message,
            counted_failures=counted,
            attempt=row["attempt"],
            agent_id=agent_id,
        ),
    )


async def _retry(
    conn: Connection, changes: Changes, row: Record, failure: Failure, counted: int, delay: float
) -> None:
    task_id: UUID = row["parent_task_id"]
    if row["transaction_id"] is not None:
        await lock_before_payment(conn, row["parent_task_id"])
        await release_hold(conn, row["transaction_id"], f"{failure.code}: {failure.message}")
    next_at = await conn.fetchval(
        QUERIES["retry_subtask"],
        row["subtask_id"],
        counted,
        delay,
        failure.code,
        failure.message[:2000],
    )
    delta = changes.delta(task_id)
    delta.move("running", "ready")
    delta.reserved -= row["quoted_price"] or ZERO
    changes.task(task_id).retries += 1
    changes.log(
        task_id,
        row["subtask_id"],
        "RETRYING",
        failure.message[:2000],
        failure.code,
        attempt=row["attempt"],
        agent_id=row["assigned_agent_id"],
        next_attempt_at=next_at.isoformat(),
        delay_seconds=round(delay, 3),
    )
    if delay <= 0:
        changes.wake = True
    await changes.flush(conn)


async def fail_ready(
    conn: Connection,
    context: Context,
    changes: Changes,
    subtask_id: UUID,
    attempt: int,
    failure: Failure,
) -> bool:
    """Fail a READY subtask that cannot be attempted (no agent and out of retries, or the
    creator cannot pay), ending its task. False when it changed in the meantime."""
    row = await conn.fetchrow(QUERIES["lock_ready"], subtask_id, attempt)
    if row is None:
        return False
    await end_task(
        conn,
        context,
        changes,
        row["parent_task_id"],
        status="FAILED",
        code=failure.task_code or FailureCode.SUBTASK_FAILED,
        message=f"subtask {row['name']!r} failed: {failure.code}: {failure.message}",
        failed_subtask=FailedSubtask(
            subtask_id, failure.code, failure.message, counted_failures=1 if failure.counts else 0
        ),
    )
    return True


async def accept_attempt(
    conn: Connection, subtask_id: UUID, attempt: int, timeout_seconds: float
) -> bool:
    """The agent answered 202: it has until the attempt's timeout to post the result."""
    return (
        await conn.fetchval(QUERIES["accept_attempt"], subtask_id, attempt, timeout_seconds)
        is not None
    )


async def log_ignored(
    conn: Connection, changes: Changes, subtask_id: UUID, attempt: int, source: str
) -> None:
    """Log a result that arrived for an attempt that no longer holds the subtask."""
    row = await conn.fetchrow(QUERIES["subtask_owner"], subtask_id)
    if row is None:
        return
    changes.log(
        row["parent_task_id"],
        subtask_id,
        "IGNORED",
        f"late result of attempt {attempt} ignored ({source}); the subtask is {row['status']} "
        f"at attempt {row['attempt']}",
        FailureCode.STALE_ATTEMPT,
        attempt=attempt,
        current_attempt=row["attempt"],
    )
    await changes.flush(conn)
