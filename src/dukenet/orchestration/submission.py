"""Task submission: validate everything that can be known up front, then store the task, its
subtasks (roots READY when the task can start now) and its progress row in one transaction.

Checks, each a 422 naming the JSON Pointer of the culprit: the body's shape; the two
schemas are valid JSON Schemas and the input validates; the deadline is in the future; the
graph (unknown ``depends_on``, cycles, ``$ref`` to a non-ancestor); every dependency task
exists, is the caller's and has not failed; every subtask has an eligible agent now; and
the cheapest feasible plan (``estimated_cost``) fits ``cost_limit``. A creator whose
balance does not cover the estimate gets 402. A repeated ``Idempotency-Key`` returns the
task it created first (or 422 ``IDEMPOTENCY_KEY_REUSED`` when the body differs).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import rfc8785

from dukenet import crypto
from dukenet.errors import CostLimitExceeded, InvalidInput, PaymentRequired
from dukenet.market import ledger
from dukenet.orchestration import inputs, schemas, selection
from dukenet.orchestration.engine import READY_CHANNEL, transact
from dukenet.orchestration.errors import (
    DeadlinePassed,
    DependencyFailed,
    DependencyNotFound,
    IdempotencyKeyReused,
    NoEligibleAgent,
)
from dukenet.orchestration.models import PRIORITY_RANK, TaskSubmission, parse_submission
from dukenet.orchestration.planning import Plan, PlannedSubtask, plan, time_ordered_id
from dukenet.orchestration.progress import ZERO, Changes
from dukenet.runtime import Services
from dukenet.store.postgres import Connection, Record
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.orchestration", "queries.sql")
MAX_IDEMPOTENCY_KEY = 255


def request_hash(body: Any) -> str:
    """sha256 of the body's canonical JSON (RFC 8785): what a repeated key must match."""
    try:
        data = crypto.canonical_bytes(body)
    except rfc8785.CanonicalizationError:  # e.g. integers beyond 2^53: sorted JSON instead
        data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()


def check_static(submission: TaskSubmission, now: datetime) -> Plan:
    """Every check that needs no database: schemas, input, deadline, graph."""
    schemas.check_schema(submission.input_schema, field="/input_schema")
    schemas.check_schema(submission.output_schema, field="/output_schema")
    schemas.validate(submission.input_schema, submission.input, field="/input")
    if submission.deadline is not None and submission.deadline <= now:
        raise DeadlinePassed(
            f"deadline {submission.deadline.isoformat()} is not in the future", field="/deadline"
        )
    return plan(submission)


async def _check_dependencies(conn: Connection, creator: str, dependencies: list[UUID]) -> bool:
    """Whether every dependency already completed (so the task starts now)."""
    if not dependencies:
        return True
    found = {
        row["task_id"]: row for row in await conn.fetch(QUERIES["dependency_tasks"], dependencies)
    }
    ready = True
    for index, task_id in enumerate(dependencies):
        row = found.get(task_id)
        where = f"/dependencies/{index}"
        if row is None or row["created_by"] != creator:
            raise DependencyNotFound(f"no task {task_id} of yours", field=where)
        if row["status"] in ("FAILED", "CANCELLED"):
            raise DependencyFailed(f"dependency {task_id} is {row['status']}", field=where)
        ready = ready and row["status"] == "COMPLETED"
    return ready


async def estimate_cost(
    conn: Connection,
    submission: TaskSubmission,
    planned: Plan,
    creator: str,
    heartbeat_ttl: int,
    min_trust: Decimal,
) -> Decimal:
    """The cheapest feasible plan: per subtask the lowest price among eligible agents
    (trusted at least ``min_trust``). ``NoEligibleAgent`` names the first subtask nobody
    can take."""
    names = sorted({subtask.spec.capability for subtask in planned.subtasks})
    candidates = await selection.fetch_candidates(conn, names, heartbeat_ttl, min_trust)
    total = ZERO
    for subtask in planned.subtasks:
        spec = subtask.spec
        requirements = selection.Requirements(
            capability=spec.capability,
            buyer_agent_id=creator,
            currency=submission.currency,
            constraints=_constraints(subtask),
            pinned_agent_id=spec.agent_id,
            input=selection.UNKNOWN if subtask.references else spec.input,
        )
        options = selection.eligible(candidates[spec.capability], requirements)
        if not options:
            field = f"{subtask.field}/agent_id" if spec.agent_id else f"{subtask.field}/capability"
            raise NoEligibleAgent(
                f"no eligible agent for {spec.capability!r} (subtask {spec.name!r}): none is "
                "active with a fresh heartbeat, meets the constraints and accepts the input",
                field=field,
            )
        total += selection.cheapest_charge(options, creator)
    return total


def _constraints(subtask: PlannedSubtask) -> dict[str, Any] | None:
    constraints = subtask.spec.constraints
    if constraints is None:
        return None
    return constraints.model_dump(mode="json", exclude_none=True) or None


async def _check_funds(conn: Connection, creator: str, currency: str, estimate: Decimal) -> None:
    if estimate <= 0:
        return
    balances = await ledger.balances_of(conn, creator)
    available = next((b["available"] for b in balances if b["currency"] == currency), ZERO)
    if available < estimate:
        raise PaymentRequired(
            f"your available balance of {available} {currency} does not cover the estimated "
            f"cost {estimate}",
            extra={"available": str(available), "required": str(estimate), "currency": currency},
        )


async def submit_task(
    services: Services, creator: str, body: Any, *, idempotency_key: str | None = None
) -> tuple[UUID, bool]:
    """Validate and store a task; returns ``(task_id, created)`` (``created`` is False for a
    repeated ``Idempotency-Key``)."""
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters", field="Idempotency-Key"
        )
    fingerprint = request_hash(body)
    if idempotency_key is not None:
        async with services.db.acquire() as conn:
            existing = await conn.fetchrow(
                QUERIES["task_by_idempotency_key"], creator, idempotency_key
            )
        if existing is not None:
            return _replay(existing["task_id"], existing["request_hash"], fingerprint)
    submission = parse_submission(body)
    planned = check_static(submission, datetime.now(UTC))
    heartbeat_ttl = services.settings.heartbeat_ttl
    min_trust = services.settings.trust_selection_threshold

    async def work(conn: Connection, changes: Changes) -> tuple[UUID, bool]:
        start_now = await _check_dependencies(conn, creator, submission.dependencies)
        estimate = await estimate_cost(conn, submission, planned, creator, heartbeat_ttl, min_trust)
        if submission.cost_limit is not None and estimate > submission.cost_limit:
            raise CostLimitExceeded(
                f"the cheapest feasible plan costs {estimate}, above cost_limit "
                f"{submission.cost_limit}",
                field="/cost_limit",
                extra={"estimated_cost": f"{estimate:.4f}"},
            )
        await _check_funds(conn, creator, submission.currency, estimate)
        task_id = time_ordered_id()
        progress = await _store(
            conn,
            submission,
            planned,
            task_id,
            creator,
            start_now,
            estimate,
            fingerprint,
            idempotency_key,
        )
        if progress is None:  # the same key won a race a moment ago
            existing = await conn.fetchrow(
                QUERIES["task_by_idempotency_key"], creator, idempotency_key
            )
            assert existing is not None
            return _replay(existing["task_id"], existing["request_hash"], fingerprint)
        changes.created(progress, "EXECUTING" if start_now else "PENDING")
        return task_id, True

    return await transact(services, work)


def _replay(task_id: UUID, stored_hash: str | None, fingerprint: str) -> tuple[UUID, bool]:
    if stored_hash is not None and stored_hash != fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request body",
            field="Idempotency-Key",
            extra={"task_id": str(task_id)},
        )
    return task_id, False


async def _store(
    conn: Connection,
    submission: TaskSubmission,
    planned: Plan,
    task_id: UUID,
    creator: str,
    start_now: bool,
    estimate: Decimal,
    fingerprint: str,
    idempotency_key: str | None,
) -> Record | None:
    """Store the task, its subtasks (roots READY when it starts now), its progress row and
    its first log rows in one statement (``store_task``); the progress row, or None when
    the idempotency key was taken meanwhile."""
    subtasks = planned.subtasks
    ready = [s for s in subtasks if start_now and s.is_root]
    ready_ids = {s.subtask_id for s in ready}
    log: list[tuple[UUID | None, str, str, dict[str, Any] | None]] = [
        (
            None,
            "SUBMITTED",
            submission.name,
            {
                "subtasks": len(subtasks),
                "dependencies": [str(d) for d in submission.dependencies],
            },
        )
    ]
    if start_now:
        log.append((None, "STARTED", submission.name, None))
        log += [(s.subtask_id, "READY", s.name, None) for s in ready]
    row: Record | None = await conn.fetchrow(
        QUERIES["store_task"],
        task_id,
        submission.name,
        submission.description,
        creator,
        "EXECUTING" if start_now else "PENDING",
        submission.priority,
        submission.deadline,
        submission.timeout_seconds,
        submission.input_schema,
        submission.output_schema,
        submission.input,
        submission.cost_limit,
        estimate,
        submission.currency,
        submission.max_retries,
        submission.backoff_strategy,
        list(dict.fromkeys(submission.tags)),
        submission.dependencies,
        submission.metadata,
        idempotency_key,
        fingerprint,
        PRIORITY_RANK[submission.priority],
        [s.subtask_id for s in subtasks],
        [s.name for s in subtasks],
        [s.spec.description for s in subtasks],
        ["READY" if s.subtask_id in ready_ids else "PENDING" for s in subtasks],
        ["{" + ",".join(map(str, s.depends_on)) + "}" for s in subtasks],
        ["{" + ",".join(map(str, s.dependents)) + "}" for s in subtasks],
        [inputs.dump(s.spec.input) for s in subtasks],
        [
            inputs.dump(inputs.resolve_input(s.spec.input, submission.input, {}))
            if s.subtask_id in ready_ids
            else None
            for s in subtasks
        ],
        [inputs.dump(s.spec.output_mapping) for s in subtasks],
        [s.spec.capability for s in subtasks],
        [inputs.dump(_constraints(s)) for s in subtasks],
        [s.spec.agent_id for s in subtasks],
        [s.position for s in subtasks],
        len(subtasks),
        len(subtasks) - len(ready),
        len(ready),
        [subtask_id for subtask_id, *_ in log],
        [event for _, event, _, _ in log],
        [message for _, _, message, _ in log],
        [None] * len(log),
        [inputs.dump(metadata) for *_, metadata in log],
        # Delivered to the workers' LISTEN connections at commit: no extra round trip
        # after it, and no window where the task is committed but nobody was told.
        bool(ready),
        READY_CHANNEL,
    )
    return row
