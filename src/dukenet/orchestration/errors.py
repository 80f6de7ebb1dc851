"""Orchestration errors (the ``dukenet.errors`` tree with task-specific codes) and the stable
codes that failed attempts, subtasks and tasks carry in ``error_code``."""

from __future__ import annotations

from enum import StrEnum

from dukenet.errors import Conflict, InvalidInput, InvalidState, NotFound


class TaskNotFound(NotFound):
    """No task has this id."""

    code = "TASK_NOT_FOUND"
    title = "Task not found"


class SubtaskNotFound(NotFound):
    """No subtask has this id."""

    code = "SUBTASK_NOT_FOUND"
    title = "Subtask not found"


class NoEligibleAgent(InvalidInput):
    """No active agent with a fresh heartbeat offers the capability within the constraints."""

    code = "NO_ELIGIBLE_AGENT"
    title = "No eligible agent"


class InvalidGraph(InvalidInput):
    """The subtask graph is malformed: an unknown ``depends_on`` name or a cycle."""

    code = "INVALID_GRAPH"
    title = "Invalid subtask graph"


class InvalidReference(InvalidInput):
    """A ``$ref`` is malformed or points at something that is not an ancestor."""

    code = "INVALID_REFERENCE"
    title = "Invalid reference"


class DeadlinePassed(InvalidInput):
    """The task's deadline is not in the future."""

    code = "DEADLINE_PASSED"
    title = "Deadline passed"


class DependencyNotFound(InvalidInput):
    """A task named in ``dependencies`` does not exist (or is not the caller's)."""

    code = "DEPENDENCY_NOT_FOUND"
    title = "Dependency not found"


class DependencyFailed(InvalidInput):
    """A task named in ``dependencies`` already failed or was cancelled."""

    code = "DEPENDENCY_FAILED"
    title = "Dependency failed"


class IdempotencyKeyReused(InvalidInput):
    """An ``Idempotency-Key`` was sent again with a different request body."""

    code = "IDEMPOTENCY_KEY_REUSED"
    title = "Idempotency key reused"


class StaleAttempt(Conflict):
    """A result names an attempt that no longer holds the subtask (it was re-claimed,
    timed out, or the task ended); the result is ignored."""

    code = "STALE_ATTEMPT"
    title = "Stale attempt"


class TaskFinished(InvalidState):
    """The task already ended, so it cannot be cancelled."""

    code = "TASK_FINISHED"
    title = "Task finished"


class FailureCode(StrEnum):
    """``error_code`` values written on attempts, subtasks and tasks."""

    NO_ELIGIBLE_AGENT = "NO_ELIGIBLE_AGENT"
    AGENT_UNREACHABLE = "AGENT_UNREACHABLE"
    ATTEMPT_TIMEOUT = "ATTEMPT_TIMEOUT"
    LEASE_EXPIRED = "LEASE_EXPIRED"
    AGENT_ERROR = "AGENT_ERROR"
    AGENT_RATE_LIMITED = "AGENT_RATE_LIMITED"
    AGENT_REJECTED = "AGENT_REJECTED"
    INVALID_AGENT_RESPONSE = "INVALID_AGENT_RESPONSE"
    OUTPUT_SCHEMA_VIOLATION = "OUTPUT_SCHEMA_VIOLATION"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    INPUT_RESOLUTION_FAILED = "INPUT_RESOLUTION_FAILED"
    OUTPUT_MAPPING_FAILED = "OUTPUT_MAPPING_FAILED"
    WORKER_SHUTDOWN = "WORKER_SHUTDOWN"
    STALE_ATTEMPT = "STALE_ATTEMPT"
    SUBTASK_FAILED = "SUBTASK_FAILED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    DEPENDENCY_FAILED = "DEPENDENCY_FAILED"
    CANCELLED = "CANCELLED"
