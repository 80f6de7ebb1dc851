"""Completing attempts, several per transaction: settle, unblock dependents (resolving their
references), and finish the tasks whose last subtask just completed.

A worker hands its answered attempts over in batches, so one commit records many of them.
Within a batch the lock order of ``queries.sql`` holds: every subtask row first (the
completed ones, then their waiting dependents), then the progress rows in id order, then
the task rows. Every completion is fenced by ``(subtask_id, attempt)``: an answer from an
attempt that no longer holds its subtask changes nothing and is logged as IGNORED.

Before a batch, ``check_answer`` turns an output that breaks the capability's
``output_schema`` (or a charge above the quote) into a failed attempt instead.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from dukenet.errors import InvalidState, PaymentRequired
from dukenet.market import escrow
from dukenet.orchestration import inputs, schemas
from dukenet.orchestration.engine import Context
from dukenet.orchestration.errors import FailureCode
from dukenet.orchestration.feedback import FinishedAttempt
from dukenet.orchestration.lifecycle import (
    Ending,
    FailedSubtask,
    end_task,
    finish_tasks,
    lock_tasks,
)
from dukenet.orchestration.outcomes import Failure
from dukenet.orchestration.progress import ZERO, Changes, lock_before_payment
from dukenet.store.postgres import Connection, Database, Record
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.orchestration", "queries.sql")
OUTPUT_SCHEMA_TTL = 30.0  # seconds a capability's output schema is reused without a lookup
_output_schemas: dict[str, tuple[float, Any]] = {}


@dataclass(frozen=True)
class Answer:
    """What an agent answered for an attempt."""

    subtask_id: UUID
    task_id: UUID
    attempt: int
    output: Any
    cost: Decimal | None  # what the agent charged; None: the quoted price
    latency_ms: int | None = None  # how long the call took (None: a posted result)


class RecordOneByOne(Exception):
    """A batch met something only a single completion may handle (a dependent whose
    references do not resolve, a payment that cannot settle): record the answers of the
    batch one by one instead."""


class CannotSettle(Exception):
    """The attempt's hold expired and the creator can no longer pay."""


async def output_schema(db: Database, capability_id: str | None) -> Any:
    """A capability's ``output_schema`` (``True`` when unknown), cached for a while."""
    if capability_id is None:
        return True
    cached = _output_schemas.get(capability_id)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    async with db.acquire() as conn:
        schema = await conn.fetchval(QUERIES["capability_output_schema"], capability_id)
    schema = True if schema is None else schema
    _output_schemas[capability_id] = (now + OUTPUT_SCHEMA_TTL, schema)
    return schema


async def check_answer(
    db: Database, answer: Answer, capability_id: str | None, quoted: Decimal
) -> Failure | None:
    """Why the answer cannot complete the attempt (a failure to record), or ``None``."""
    problem = schemas.first_error(await output_schema(db, capability_id), answer.output)
    if problem is not None:
        where, message = problem
        return Failure(
            FailureCode.OUTPUT_SCHEMA_VIOLATION,
            f"output{where}: {message}",
            retryable=True,
            latency_ms=answer.latency_ms,
        )
    if answer.cost is not None and answer.cost > quoted:
        return Failure(
            FailureCode.INVALID_AGENT_RESPONSE,
            f"the agent charged {answer.cost}, more than its price {quoted}",
            retryable=True,
            latency_ms=answer.latency_ms,
        )
    return None


async def complete_attempts(
    conn: Connection, context: Context, changes: Changes, answers: list[Answer]
) -> dict[UUID, str]:
    """Record checked answers; per subtask ``COMPLETED`` or ``STALE`` (that attempt no
    longer holds the subtask: nothing changed but an IGNORED log row)."""
    rows = await conn.fetch(
        QUERIES["complete_subtasks"],
        [a.subtask_id for a in answers],
        [a.attempt for a in answers],
        [inputs.dump(a.output) for a in answers],
        [a.cost for a in answers],
    )
    completed = {row["subtask_id"]: row for row in rows}
    results: dict[UUID, str] = {}
    outputs: dict[tuple[UUID, str], Any] = {}
    dependents: list[UUID] = []
    for answer in answers:
        row = completed.get(answer.subtask_id)
        if row is None:
            results[answer.subtask_id] = "STALE"
            changes.log(
                answer.task_id,
                answer.subtask_id,
                "IGNORED",
                f"late answer of attempt {answer.attempt} ignored",
                FailureCode.STALE_ATTEMPT,
                attempt=answer.attempt,
            )
            continue
        results[answer.subtask_id] = "COMPLETED"
        task_id: UUID = row["parent_task_id"]
        changes.finished.append(
            FinishedAttempt(
                row["assigned_agent_id"],
                row["capability_id"],
                answer.subtask_id,
                answer.attempt,
                "success",
                caused_by_agent=False,
                latency_ms=answer.latency_ms,
            )
        )
        charged: Decimal = row["cost"]
        quoted: Decimal = row["quoted_price"] or ZERO
        if row["transaction_id"] is not None:
            if len(answers) > 1:
                raise RecordOneByOne("payments settle one completion at a time")
            await lock_before_payment(conn, row["parent_task_id"])
            await _settle(conn, context, row, charged, answer.output)
        delta = changes.delta(task_id)
        delta.move("running", "completed")
        delta.spent += charged
        delta.reserved -= quoted
        if charged:
            changes.task(task_id).cost += charged
        changes.log(
            task_id,
            answer.subtask_id,
            "COMPLETED",
            row["name"],
            attempt=answer.attempt,
            agent_id=row["assigned_agent_id"],
            cost=f"{charged:.4f}",
        )
        outputs[(task_id, row["name"])] = answer.output
        dependents += row["dependents"]
    if dependents and await _unblock(
        conn, context, changes, dependents, outputs, single=len(answers) == 1
    ):
        return results  # a dependent could not be prepared: its task was ended
    progress = await changes.bump(conn)
    finishing = sorted(t for t, p in progress.items() if p["completed"] == p["total"])
    if not finishing:
        await changes.write(conn)
        return results
    locked = await lock_tasks(conn, finishing)
    subtasks = await conn.fetch(QUERIES["audit_subtasks"], finishing)
    endings = _endings(finishing, locked, subtasks)
    for ending in endings:
        changes.log(
            ending.task_id,
            None,
            ending.status,
            ending.message or "every subtask completed",
            ending.code,
        )
        changes.set_status(ending.task_id, ending.status, ending.code)
    await changes.write(conn)
    await finish_tasks(conn, context, changes, endings, locked, subtasks)
    return results


def _endings(
    finishing: list[UUID], tasks: dict[UUID, Record], subtasks: list[Record]
) -> list[Ending]:
    """Assemble each finished task's output and check it against the task's schema."""
    by_task: dict[UUID, list[Record]] = defaultdict(list)
    for row in subtasks:
        if row["output_mapping"] is not None:
            by_task[row["parent_task_id"]].append(row)
    endings = []
    for task_id in finishing:
        try:
            output = inputs.assemble_output(
                (r["name"], r["output"], r["output_mapping"]) for r in by_task[task_id]
            )
        except inputs.ResolutionError as exc:
            endings.append(Ending(task_id, "FAILED", FailureCode.OUTPUT_MAPPING_FAILED, str(exc)))
            continue
        problem = schemas.first_error(tasks[task_id]["output_schema"], output)
        if problem is None:
            endings.append(Ending(task_id, "COMPLETED", None, None, output))
        else:
            message = f"task output{problem[0]}: {problem[1]}"
            endings.append(
                Ending(task_id, "FAILED", FailureCode.OUTPUT_SCHEMA_VIOLATION, message, output)
            )
    return endings


async def _settle(
    conn: Connection, context: Context, row: Record, charged: Decimal, output: Any
) -> None:
    """Settle the attempt's hold with what the agent charged; when the market already
    expired the hold, take and settle a fresh one (``CannotSettle`` if funds are gone)."""
    proof = {
        "subtask_id": str(row["subtask_id"]),
        "task_id": str(row["parent_task_id"]),
        "attempt": row["attempt"],
        "agent_id": row["assigned_agent_id"],
        "output_sha256": hashlib.sha256((inputs.dump(output) or "null").encode()).hexdigest(),
    }
    transaction_id: UUID = row["transaction_id"]
    try:
        await escrow.settle(
            conn,
            context.network_key,
            transaction_id,
            fee_rate=context.fee_rate,
            amount=charged,
            completion_proof=proof,
        )
        return
    except InvalidState:
        if charged == 0:
            return
    try:
        transaction_id = await escrow.hold(
            conn,
            buyer_agent_id=row["created_by"],
            seller_agent_id=row["assigned_agent_id"],
            amount=charged,
            currency=row["currency"],
            item_id=row["capability_id"],
            subtask_id=row["subtask_id"],
            metadata={"task_id": str(row["parent_task_id"]), "attempt": row["attempt"]},
        )
    except PaymentRequired as exc:
        raise CannotSettle(exc.detail) from exc
    await escrow.settle(
        conn,
        context.network_key,
        transaction_id,
        fee_rate=context.fee_rate,
        amount=charged,
        completion_proof=proof,
    )
    await conn.execute(QUERIES["set_transaction"], row["subtask_id"], transaction_id)


async def _unblock(
    conn: Connection,
    context: Context,
    changes: Changes,
    dependents: list[UUID],
    known: dict[tuple[UUID, str], Any],
    *,
    single: bool,
) -> bool:
    """Make READY the dependents whose dependencies all completed, resolving their
    references. True when one could not be resolved and its task was ended instead."""
    locked = [
        row["subtask_id"]
        for row in await conn.fetch(QUERIES["lock_waiting_dependents"], sorted(set(dependents)))
    ]
    if not locked:
        return False
    unblocked = await conn.fetch(QUERIES["unblocked_subtasks"], locked)
    if not unblocked:
        return False
    wanted: set[tuple[UUID, str]] = set()
    needs_task_input: set[UUID] = set()
    for row in unblocked:
        for reference in inputs.references(row["input"]):
            if reference.source == "task":
                needs_task_input.add(row["parent_task_id"])
            elif (row["parent_task_id"], reference.source) not in known:
                wanted.add((row["parent_task_id"], reference.source))
    outputs = dict(known)
    if wanted:
        pairs = sorted(wanted)
        for row in await conn.fetch(
            QUERIES["subtask_outputs"], [p[0] for p in pairs], [p[1] for p in pairs]
        ):
            outputs[(row["parent_task_id"], row["name"])] = row["output"]
    task_inputs: dict[UUID, Any] = {}
    if needs_task_input:
        for row in await conn.fetch(QUERIES["task_inputs"], sorted(needs_task_input)):
            task_inputs[row["task_id"]] = row["actual_input"]
    resolved: list[Any] = []
    for row in unblocked:
        task_id = row["parent_task_id"]
        mine = {name: value for (owner, name), value in outputs.items() if owner == task_id}
        try:
            resolved.append(inputs.resolve_input(row["input"], task_inputs.get(task_id), mine))
        except inputs.ResolutionError as exc:
            if not single:
                raise RecordOneByOne(str(exc)) from exc
            await end_task(
                conn,
                context,
                changes,
                task_id,
                status="FAILED",
                code=FailureCode.SUBTASK_FAILED,
                message=f"subtask {row['name']!r} could not be prepared: {exc}",
                failed_subtask=FailedSubtask(
                    row["subtask_id"], FailureCode.INPUT_RESOLUTION_FAILED, str(exc)
                ),
            )
            return True
    await conn.execute(
        QUERIES["make_ready"],
        [row["subtask_id"] for row in unblocked],
        [inputs.dump(value) for value in resolved],
    )
    for row in unblocked:
        changes.delta(row["parent_task_id"]).move("pending", "ready")
        changes.log(row["parent_task_id"], row["subtask_id"], "READY", row["name"])
        changes.readied.append(row["subtask_id"])
    return False
