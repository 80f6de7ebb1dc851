"""Task-level transitions: start a waiting task, end a task (completed, failed, cancelled),
and what an ending does to the tasks that depend on it.

Each function runs inside the caller's transaction, locks subtask rows before flushing the
``Changes`` (which locks the progress row) and touches the tasks row last, following the
lock order documented in ``queries.sql``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

import asyncpg

from dukenet.audit.trail import record_task_executions
from dukenet.errors import InvalidState
from dukenet.market import escrow
from dukenet.orchestration import inputs
from dukenet.orchestration.engine import Context
from dukenet.orchestration.errors import FailureCode, TaskFinished
from dukenet.orchestration.progress import ZERO, Changes, lock_before_payment
from dukenet.store.postgres import Connection, Record
from dukenet.store.sql import load_queries

log = logging.getLogger(__name__)
QUERIES = load_queries("dukenet.orchestration", "queries.sql")

AUDITED_TASK_FIELDS = (
    "task_id",
    "name",
    "description",
    "created_by",
    "created_at",
    "status",
    "priority",
    "deadline",
    "timeout_seconds",
    "started_at",
    "completed_at",
    "input_schema",
    "output_schema",
    "actual_input",
    "actual_output",
    "cost_limit",
    "estimated_cost",
    "actual_cost",
    "currency",
    "max_retries",
    "current_retries",
    "backoff_strategy",
    "tags",
    "dependencies",
    "error_code",
    "error",
)


@dataclass(frozen=True)
class FailedSubtask:
    """The subtask whose failure ends the task (it becomes FAILED, the rest CANCELLED)."""

    subtask_id: UUID
    code: str
    message: str
    counted_failures: int = 0
    attempt: int | None = None
    agent_id: str | None = None


async def release_hold(conn: Connection, transaction_id: UUID, reason: str) -> None:
    """Give a held payment back to the buyer (a hold the market already expired is skipped)."""
    try:
        await escrow.release(conn, transaction_id, reason=reason[:1000])
    except InvalidState:
        log.info("hold %s was no longer pending; nothing to release", transaction_id)


async def end_task(
    conn: Connection,
    context: Context,
    changes: Changes,
    task_id: UUID,
    *,
    status: str,
    code: str,
    message: str,
    failed_subtask: FailedSubtask | None = None,
) -> None:
    """FAILED or CANCELLED: open subtasks are cancelled (their holds released), the failing
    one marked FAILED, the task ended with its audit record; tasks waiting for it fail.
    ``TaskFinished`` (rolling everything back) when the task had already ended."""
    rows = await conn.fetch(QUERIES["lock_open_subtasks"], task_id)
    if any(row["transaction_id"] is not None for row in rows):
        await lock_before_payment(conn, task_id)
    delta = changes.delta(task_id)
    cancelled: list[UUID] = []
    for row in rows:
        if row["transaction_id"] is not None:
            await release_hold(conn, row["transaction_id"], f"{code}: {message}")
        delta.reserved -= row["quoted_price"] or ZERO
        if failed_subtask is not None and row["subtask_id"] == failed_subtask.subtask_id:
            await conn.execute(
                QUERIES["fail_subtask"],
                failed_subtask.subtask_id,
                failed_subtask.counted_failures,
                failed_subtask.code,
                failed_subtask.message[:2000],
            )
            delta.move(row["status"], "failed")
            changes.log(
                task_id,
                failed_subtask.subtask_id,
                "FAILED",
                failed_subtask.message,
                failed_subtask.code,
                attempt=failed_subtask.attempt,
                agent_id=failed_subtask.agent_id,
            )
        else:
            cancelled.append(row["subtask_id"])
            delta.move(row["status"], "cancelled")
            changes.log(task_id, row["subtask_id"], "CANCELLED", message, code)
    if cancelled:
        await conn.execute(QUERIES["cancel_subtasks"], cancelled, code)
    changes.log(task_id, None, status, message, code)
    changes.set_status(task_id, status, code)
    await changes.flush(conn)
    await finish_tasks(conn, context, changes, [Ending(task_id, status, code, message)])


@dataclass(frozen=True)
class Ending:
    """How a task ends."""

    task_id: UUID
    status: str
    code: str | None
    message: str | None
    output: Any = None


async def lock_tasks(conn: Connection, task_ids: list[UUID]) -> dict[UUID, Record]:
    """Lock unfinished tasks (in id order) with the database clock; ``TaskFinished`` if one
    already ended."""
    rows = {row["task_id"]: row for row in await conn.fetch(QUERIES["lock_tasks"], task_ids)}
    for task_id in task_ids:
        row = rows.get(task_id)
        if row is None or row["status"] not in ("PENDING", "EXECUTING"):
            raise TaskFinished(
                f"task {task_id} already ended",
                extra={"status": row["status"] if row else None},
            )
    return rows


async def finish_tasks(
    conn: Connection,
    context: Context,
    changes: Changes,
    endings: list[Ending],
    locked: dict[UUID, Record] | None = None,
    subtask_rows: list[Record] | None = None,
) -> None:
    """Write the tasks' ends, each with its audit record ``/dukenet/tasks/{id}/execution``,
    then start or fail the tasks waiting for them. The log must already hold the ending
    events; ``locked`` and ``subtask_rows`` (``audit_subtasks``) are what the caller read
    already."""
    task_ids = [ending.task_id for ending in endings]
    tasks = locked if locked is not None else await lock_tasks(conn, task_ids)
    if subtask_rows is None:
        subtask_rows = await conn.fetch(QUERIES["audit_subtasks"], task_ids)
    subtasks: dict[UUID, list[dict[str, Any]]] = {task_id: [] for task_id in task_ids}
    for row in subtask_rows:
        record = dict(row)
        record.pop("output_mapping")
        subtasks[record.pop("parent_task_id")].append(record)
    events: dict[UUID, list[dict[str, Any]]] = {task_id: [] for task_id in task_ids}
    for row in await conn.fetch(QUERIES["audit_events"], task_ids):
        record = dict(row)
        events[record.pop("task_id")].append(record)
    executions = []
    for ending in endings:
        task = tasks[ending.task_id]
        final = {name: task[name] for name in AUDITED_TASK_FIELDS}
        final.update(
            status=ending.status,
            error_code=ending.code,
            error=ending.message,
            actual_output=ending.output,
            completed_at=task["now"],
            started_at=task["started_at"] or task["now"],
        )
        executions.append((final, subtasks[ending.task_id], events[ending.task_id]))
    # The tasks' rows are locked (above): their execution paths have no other writer.
    cids = await record_task_executions(
        cast(asyncpg.Connection, conn), context.network_key, executions
    )
    waiting = await conn.fetch(
        QUERIES["end_tasks"],
        task_ids,
        [e.status for e in endings],
        [e.code for e in endings],
        [e.message for e in endings],
        [inputs.dump(e.output) for e in endings],
        cids,
    )
    statuses = {ending.task_id: ending.status for ending in endings}
    for row in waiting:
        dependency, status = row["dependency"], statuses[row["dependency"]]
        if status == "COMPLETED":
            await start_task(conn, context, changes, row["task_id"])
        else:
            await end_task(
                conn,
                context,
                changes,
                row["task_id"],
                status="FAILED",
                code=FailureCode.DEPENDENCY_FAILED,
                message=f"dependency {dependency} ended {status}",
            )


async def start_task(conn: Connection, context: Context, changes: Changes, task_id: UUID) -> bool:
    """PENDING → EXECUTING once every dependency completed: root subtasks become READY with
    their task references resolved. False when it is not (or no longer) startable."""
    roots = await conn.fetch(QUERIES["lock_pending_roots"], task_id)
    if not roots:
        return False
    if await conn.fetchval(QUERIES["unfinished_dependencies"], task_id):
        return False
    task_input = await conn.fetchval(QUERIES["task_input"], task_id)
    resolved = [inputs.resolve_input(row["input"], task_input, {}) for row in roots]
    await conn.execute(
        QUERIES["make_ready"],
        [row["subtask_id"] for row in roots],
        [inputs.dump(value) for value in resolved],
    )
    changes.delta(task_id).move("pending", "ready", len(roots))
    changes.log(task_id, None, "STARTED", "all dependencies completed")
    for row in sorted(roots, key=lambda r: r["position"]):
        changes.log(task_id, row["subtask_id"], "READY", row["name"])
    changes.task(task_id).started = True
    changes.set_status(task_id, "EXECUTING")
    changes.wake = True
    await changes.flush(conn)
    return True
