"""What the API (and the CLI through it) does with tasks: read them, follow their events,
cancel them, and accept the result of a long-running attempt. Tasks belong to their
creator: anyone else gets 403, an unknown id 404.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from dukenet.errors import Forbidden, InvalidInput
from dukenet.orchestration import status as live_status
from dukenet.orchestration.completion import (
    Answer,
    CannotSettle,
    check_answer,
    complete_attempts,
)
from dukenet.orchestration.engine import Context, Work, transact
from dukenet.orchestration.errors import (
    FailureCode,
    StaleAttempt,
    SubtaskNotFound,
    TaskFinished,
    TaskNotFound,
)
from dukenet.orchestration.lifecycle import end_task
from dukenet.orchestration.models import (
    TERMINAL_TASK_STATES,
    AttemptResult,
    Event,
    EventPage,
    Subtask,
    SubtaskPage,
    Task,
    TaskPage,
)
from dukenet.orchestration.outcomes import Failure, fail_attempt, log_ignored
from dukenet.orchestration.progress import STATES, Changes
from dukenet.runtime import Services
from dukenet.store.postgres import Connection, Record
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.orchestration", "queries.sql")
MAX_PAGE = 1000


def _task(row: Record) -> Task:
    data = dict(row)
    data["tags"] = data.get("tags") or []
    data["dependencies"] = data.get("dependencies") or []
    if data.get("total") is not None:
        data["subtask_counts"] = {"total": data["total"], **{s: data[s] for s in STATES}}
    return Task.model_validate(data)


def _authorize(created_by: str, caller: str) -> None:
    if created_by != caller:
        raise Forbidden("only the task's creator may see or change it")


async def get_task(services: Services, task_id: UUID, caller: str) -> Task:
    """The task with its live subtask counts (404 unknown, 403 not the caller's)."""
    async with services.db.acquire() as conn:
        row = await conn.fetchrow(QUERIES["get_task"], task_id)
    if row is None:
        raise TaskNotFound(f"no task {task_id}")
    _authorize(row["created_by"], caller)
    return _task(row)


async def task_status(services: Services, task_id: UUID, caller: str) -> dict[str, Any]:
    """The compact live status from Redis (rebuilt from PostgreSQL on a miss)."""
    document = await live_status.read_status(services.db, services.cache, task_id)
    _authorize(document["created_by"], caller)
    return document


def encode_cursor(created_at: datetime, task_id: UUID) -> str:
    """An opaque keyset cursor."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{task_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The position an ``encode_cursor`` cursor stands for (422 when it is not one)."""
    try:
        created_at, _, task_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created_at), UUID(task_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this API returned", field="cursor") from exc


def _int_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        value = int(cursor)
    except ValueError as exc:
        raise InvalidInput("cursor is not one this API returned", field="cursor") from exc
    if value < 0:
        raise InvalidInput("cursor is not one this API returned", field="cursor")
    return value


async def list_tasks(
    services: Services,
    caller: str,
    *,
    status: str | None,
    tag: str | None,
    cursor: str | None,
    limit: int,
) -> TaskPage:
    """The caller's tasks, newest first."""
    after = decode_cursor(cursor) if cursor else (None, None)
    async with services.db.read() as conn:
        rows = await conn.fetch(
            QUERIES["list_tasks"], caller, status, tag.lower() if tag else None, *after, limit + 1
        )
    items = [_task(row) for row in rows[:limit]]
    more = len(rows) > limit
    next_cursor = encode_cursor(items[-1].created_at, items[-1].task_id) if more else None
    return TaskPage(items=items, next_cursor=next_cursor)


async def _owned_task(conn: Connection, task_id: UUID, caller: str) -> Record:
    row: Record | None = await conn.fetchrow(QUERIES["task_owner"], task_id)
    if row is None:
        raise TaskNotFound(f"no task {task_id}")
    _authorize(row["created_by"], caller)
    return row


async def list_subtasks(
    services: Services, task_id: UUID, caller: str, *, cursor: str | None, limit: int
) -> SubtaskPage:
    """A task's subtasks in submission order; the cursor is the next position."""
    start = _int_cursor(cursor)
    async with services.db.acquire() as conn:
        await _owned_task(conn, task_id, caller)
        rows = await conn.fetch(QUERIES["task_subtasks"], task_id, start, limit + 1)
    items = [Subtask.model_validate(dict(row)) for row in rows[:limit]]
    next_cursor = str(rows[limit]["position"]) if len(rows) > limit else None
    return SubtaskPage(items=items, next_cursor=next_cursor)


async def list_events(
    services: Services, task_id: UUID, caller: str, *, cursor: str | None, limit: int
) -> EventPage:
    """A page of the execution log after ``cursor`` (the last ``log_id`` seen)."""
    after = _int_cursor(cursor)
    async with services.db.acquire() as conn:
        await _owned_task(conn, task_id, caller)
        rows = await conn.fetch(QUERIES["task_events"], task_id, after, limit)
    items = [Event.model_validate(dict(row)) for row in rows]
    next_cursor = str(items[-1].log_id) if len(items) == limit else None
    return EventPage(items=items, next_cursor=next_cursor)


async def authorize_events(services: Services, task_id: UUID, caller: str) -> None:
    """404/403 before a stream starts."""
    async with services.db.acquire() as conn:
        await _owned_task(conn, task_id, caller)


async def follow_events(
    services: Services, task_id: UUID, *, after: int, poll_interval: float = 0.25
) -> AsyncIterator[Event]:
    """The task's events after log id ``after`` as they are committed, ending after the
    event that ends the task. Log ids of one task grow in commit order, so resuming after
    the last id received never skips an event."""
    while True:
        async with services.db.acquire() as conn:
            rows = await conn.fetch(QUERIES["task_events"], task_id, after, MAX_PAGE)
            finished = False
            if not rows:
                state = await conn.fetchval(QUERIES["task_state"], task_id)
                finished = state is None or state in TERMINAL_TASK_STATES
        for row in rows:
            event = Event.model_validate(dict(row))
            after = event.log_id
            yield event
            if event.subtask_id is None and event.event_type in TERMINAL_TASK_STATES:
                return
        if finished:
            return
        if not rows:
            await asyncio.sleep(poll_interval)


async def cancel_task(services: Services, task_id: UUID, caller: str) -> Task:
    """Cancel an unfinished task of the caller's: open subtasks CANCELLED, holds released."""
    async with services.db.acquire() as conn:
        row = await _owned_task(conn, task_id, caller)
    if row["status"] in TERMINAL_TASK_STATES:
        raise TaskFinished(
            f"task {task_id} already {row['status']}", extra={"status": row["status"]}
        )
    context = Context.from_services(services)

    async def work(conn: Connection, changes: Changes) -> None:
        await end_task(
            conn,
            context,
            changes,
            task_id,
            status="CANCELLED",
            code=FailureCode.CANCELLED,
            message="cancelled by its creator",
        )

    await transact(services, work)
    return await get_task(services, task_id, caller)


async def post_result(
    services: Services, subtask_id: UUID, caller: str, result: AttemptResult
) -> dict[str, Any]:
    """The assigned agent delivers the result of an attempt it accepted with 202.
    403 for any other agent; 409 ``STALE_ATTEMPT`` when that attempt no longer holds the
    subtask (the result is ignored, and logged)."""
    async with services.db.acquire() as conn:
        owner = await conn.fetchrow(QUERIES["subtask_owner"], subtask_id)
    if owner is None:
        raise SubtaskNotFound(f"no subtask {subtask_id}")
    if owner["assigned_agent_id"] != caller:
        raise Forbidden("only the agent assigned to the subtask may post its result")
    context = Context.from_services(services)
    failure: Failure | None = None
    if result.error is not None:
        failure = Failure(
            FailureCode.AGENT_ERROR if result.retryable else FailureCode.AGENT_REJECTED,
            result.error,
            retryable=result.retryable,
        )
    else:
        answer = Answer(
            subtask_id, owner["parent_task_id"], result.attempt, result.output, result.cost
        )
        failure = await check_answer(
            services.db, answer, owner["capability_id"], owner["quoted_price"] or Decimal(0)
        )
    if failure is None:
        try:
            outcome = (await transact(services, _complete(context, answer)))[subtask_id]
        except CannotSettle as exc:
            failure = Failure(FailureCode.INSUFFICIENT_FUNDS, str(exc), retryable=False)
    if failure is not None:
        changed = await transact(services, _fail(context, subtask_id, result.attempt, failure))
        outcome = "FAILED" if changed else "STALE"
        if not changed:

            async def record(conn: Connection, changes: Changes) -> None:
                await log_ignored(conn, changes, subtask_id, result.attempt, "result callback")

            await transact(services, record)
    if outcome == "STALE":
        raise StaleAttempt(
            f"attempt {result.attempt} no longer holds subtask {subtask_id}; result ignored",
            extra={"current_attempt": owner["attempt"]},
        )
    return {"subtask_id": str(subtask_id), "attempt": result.attempt, "outcome": outcome}


def _complete(context: Context, answer: Answer) -> Work[dict[UUID, str]]:
    async def work(conn: Connection, changes: Changes) -> dict[UUID, str]:
        return await complete_attempts(conn, context, changes, [answer])

    return work


def _fail(context: Context, subtask_id: UUID, attempt: int, failure: Failure) -> Work[bool]:
    async def work(conn: Connection, changes: Changes) -> bool:
        return await fail_attempt(conn, context, changes, subtask_id, attempt, failure)

    return work
