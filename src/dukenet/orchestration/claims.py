"""Claiming READY subtasks: lock a batch with SKIP LOCKED, pick an agent for each, hold the
payment, and start the attempts under a lease, all in one transaction.

A subtask for which no agent is eligible right now stays READY and is tried again after
its backoff (until the deadline when the task has one; otherwise each such try uses a
retry). One that cannot be attempted at all (out of retries, or the creator cannot pay)
is handed back to the caller, which fails it in a transaction of its own: failing ends
the task and locks the task's other subtasks, which must not happen while this
transaction holds progress rows (see the lock order in ``queries.sql``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from dukenet.errors import PaymentRequired
from dukenet.market import escrow
from dukenet.orchestration import backoff, selection
from dukenet.orchestration.engine import Context
from dukenet.orchestration.errors import FailureCode
from dukenet.orchestration.outcomes import Failure
from dukenet.orchestration.progress import Changes
from dukenet.store.postgres import Connection, Record
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.orchestration", "queries.sql")
# The next READY subtasks of the queue; the given READY subtasks ($2).
CLAIM_READY = f"WITH {QUERIES['ready_queue']},\n{QUERIES['claim_rows']}"
CLAIM_GIVEN = f"WITH {QUERIES['given_ready']},\n{QUERIES['claim_rows']}"


@dataclass(frozen=True)
class Assignment:
    """A started attempt: everything the worker needs to call the agent."""

    subtask_id: UUID
    task_id: UUID
    attempt: int
    capability: str
    capability_id: str
    agent_id: str
    endpoint_url: str
    input: Any
    timeout: float
    deadline: datetime  # when this attempt must be answered (never after the task deadline)
    price: Decimal


@dataclass
class ClaimResult:
    """What a claim started, and what it could not attempt at all."""

    assignments: list[Assignment] = field(default_factory=list)
    unattemptable: list[tuple[UUID, int, Failure]] = field(default_factory=list)
    claimed: int = 0

    @property
    def deferred(self) -> int:
        """Claimed subtasks left READY for later (no eligible agent now)."""
        return self.claimed - len(self.assignments) - len(self.unattemptable)


def _budget(progress: Record) -> Decimal | None:
    limit: Decimal | None = progress["cost_limit"]
    if limit is None:
        return None
    remaining: Decimal = limit - progress["spent_cost"] - progress["reserved_cost"]
    return remaining


async def claim(
    conn: Connection,
    context: Context,
    changes: Changes,
    *,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    candidates: selection.CandidateCache | None = None,
    only: list[UUID] | None = None,
) -> ClaimResult:
    """Claim up to ``limit`` READY subtasks and start an attempt for each that can start
    (agents looked up through ``candidates`` when given, else read now). With ``only``,
    just those subtasks are claimed (the ones still READY and due), not the queue's next.

    The caller's transaction may hold the claimed subtask rows and their progress rows
    already (a recorder claiming what it just made READY): the lock order is the same."""
    result = ClaimResult()
    if only is None:
        rows = await conn.fetch(CLAIM_READY, limit)
    else:
        rows = await conn.fetch(CLAIM_GIVEN, limit, only)
    result.claimed = len(rows)
    if not rows:
        return result
    names = sorted({row["capability_name"] for row in rows})
    if candidates is None:
        found = await selection.fetch_candidates(
            conn, names, context.heartbeat_ttl, context.trust_threshold
        )
    else:
        found = await candidates.get(conn, names, context.heartbeat_ttl, context.trust_threshold)
    budgets = {row["parent_task_id"]: _budget(row) for row in rows}
    now = datetime.now(UTC)
    starts: list[tuple[Record, selection.Candidate, Decimal, UUID | None, float]] = []
    deferred: list[tuple[Record, int, float]] = []
    for row in rows:
        task_id: UUID = row["parent_task_id"]
        requirements = selection.Requirements(
            capability=row["capability_name"],
            buyer_agent_id=row["created_by"],
            currency=row["currency"],
            constraints=row["constraints"],
            pinned_agent_id=row["pinned_agent_id"],
            input=row["resolved_input"],
            budget=budgets[task_id],
            avoid_agent_id=row["last_failed_agent_id"],
        )
        options = selection.eligible(found.get(row["capability_name"], []), requirements)
        if not options:
            _no_agent(context, row, now, deferred, result)
            continue
        choice = options[0]
        timeout = backoff.attempt_timeout(
            choice.latency_p99_ms,
            floor=context.attempt_timeout_floor,
            cap=context.attempt_timeout_cap,
            timeout_seconds=row["timeout_seconds"],
            deadline=row["deadline"],
            now=now,
        )
        if timeout <= 0:
            result.unattemptable.append(
                (
                    row["subtask_id"],
                    row["attempt"],
                    Failure(
                        FailureCode.DEADLINE_EXCEEDED,
                        "the task deadline passed before the subtask could start",
                        retryable=False,
                        task_code=FailureCode.DEADLINE_EXCEEDED,
                    ),
                )
            )
            continue
        charge = choice.charge_for(row["created_by"])
        transaction_id = None
        if charge > 0:
            try:
                transaction_id = await escrow.hold(
                    conn,
                    buyer_agent_id=row["created_by"],
                    seller_agent_id=choice.agent_id,
                    amount=charge,
                    currency=row["currency"],
                    item_id=choice.capability_id,
                    subtask_id=row["subtask_id"],
                    metadata={"task_id": str(task_id), "attempt": row["attempt"] + 1},
                )
            except PaymentRequired as exc:
                result.unattemptable.append(
                    (
                        row["subtask_id"],
                        row["attempt"],
                        Failure(FailureCode.INSUFFICIENT_FUNDS, exc.detail, retryable=False),
                    )
                )
                continue
            remaining = budgets[task_id]
            budgets[task_id] = None if remaining is None else remaining - charge
        starts.append((row, choice, charge, transaction_id, timeout))

    starting: list[Any] = []
    if starts:
        # Written by the flush below, in the same statement (started_attempts).
        starting = [
            [row["subtask_id"] for row, *_ in starts],
            [choice.agent_id for _, choice, *_ in starts],
            [choice.capability_id for _, choice, *_ in starts],
            [charge for _, _, charge, _, _ in starts],
            [transaction_id for *_, transaction_id, _ in starts],
            worker_id,
            lease_seconds,
        ]
        for row, choice, charge, transaction_id, timeout in starts:
            task_id = row["parent_task_id"]
            attempt = row["attempt"] + 1  # the row is locked: the flush does exactly this
            delta = changes.delta(task_id)
            delta.move("ready", "running")
            delta.reserved += charge
            changes.log(
                task_id,
                row["subtask_id"],
                "ASSIGNED",
                f"{row['name']} → agent {choice.agent_id[:12]}",
                attempt=attempt,
                agent_id=choice.agent_id,
                capability_id=choice.capability_id,
                price=f"{charge:.4f}",
                transaction_id=str(transaction_id) if transaction_id else None,
            )
            changes.log(
                task_id,
                row["subtask_id"],
                "STARTED",
                row["name"],
                attempt=attempt,
                agent_id=choice.agent_id,
                timeout_seconds=round(timeout, 3),
                worker=worker_id,
            )
            result.assignments.append(
                Assignment(
                    subtask_id=row["subtask_id"],
                    task_id=task_id,
                    attempt=attempt,
                    capability=row["capability_name"],
                    capability_id=choice.capability_id,
                    agent_id=choice.agent_id,
                    endpoint_url=choice.endpoint_url,
                    input=row["resolved_input"],
                    timeout=timeout,
                    deadline=now + timedelta(seconds=timeout),
                    price=charge,
                )
            )
    if deferred:
        await conn.execute(
            QUERIES["defer_attempts"],
            [row["subtask_id"] for row, _, _ in deferred],
            [counted for _, counted, _ in deferred],
            [delay for _, _, delay in deferred],
            FailureCode.NO_ELIGIBLE_AGENT.value,
            "no eligible agent: none is active with a fresh heartbeat and meets the constraints",
        )
        for row, _, delay in deferred:
            changes.task(row["parent_task_id"]).retries += 1
            changes.log(
                row["parent_task_id"],
                row["subtask_id"],
                "RETRYING",
                f"no eligible agent for {row['capability_name']}; trying again later",
                FailureCode.NO_ELIGIBLE_AGENT,
                attempt=row["attempt"] + 1,
                delay_seconds=round(delay, 3),
            )
    # The progress rows are locked already (the claim's progress CTE, in id order).
    await changes.flush(conn, locked=True, starting=starting)
    return result


def _no_agent(
    context: Context,
    row: Record,
    now: datetime,
    deferred: list[tuple[Record, int, float]],
    result: ClaimResult,
) -> None:
    """Defer the subtask (backoff), or hand it back as unattemptable when out of retries."""
    deadline: datetime | None = row["deadline"]
    counted = 0 if deadline is not None else 1
    failures = row["failures"] + counted
    if failures > row["max_retries"]:
        result.unattemptable.append(
            (
                row["subtask_id"],
                row["attempt"],
                Failure(
                    FailureCode.NO_ELIGIBLE_AGENT,
                    f"no eligible agent for {row['capability_name']} after "
                    f"{row['max_retries']} retries",
                    retryable=False,
                ),
            )
        )
        return
    delay = backoff.retry_delay(
        row["backoff_strategy"],
        row["attempt"] + 1,
        base=context.retry_base_delay,
        maximum=context.retry_max_delay,
    )
    if deadline is not None:
        # Until the deadline: the last try is at the deadline, where the sweeper takes over.
        delay = min(delay, max(0.0, (deadline - now).total_seconds()))
    deferred.append((row, counted, delay))
