"""Task submission inputs and the task resources returned by the API (and read by the SDK).

Field names are the column names of DATABASE-SCHEMA.md; money is a decimal string and
timestamps are RFC 3339 UTC. Inputs refuse unknown fields, so a typo is a 422 naming it.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_serializer,
)

from dukenet.errors import InvalidInput
from dukenet.orchestration import pointers
from dukenet.validation import CAPABILITY_NAME, decimal_text, non_negative_amount

MAX_SUBTASKS = 10_000
MAX_DEPENDENCIES = 100
MAX_TAGS = 32

Priority = Literal["LOW", "NORMAL", "HIGH"]
BackoffStrategy = Literal["exponential", "linear", "fixed"]
TaskStatusName = Literal["PENDING", "EXECUTING", "COMPLETED", "FAILED", "CANCELLED"]
SubtaskStatusName = Literal[
    "PENDING", "READY", "ASSIGNED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"
]
PRIORITY_RANK: dict[str, int] = {"LOW": 0, "NORMAL": 1, "HIGH": 2}
TERMINAL_TASK_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
OPEN_SUBTASK_STATES = ("PENDING", "READY", "ASSIGNED", "RUNNING")

_SUBTASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,254}$")
_CURRENCY = re.compile(r"^[A-Z][A-Z0-9]{2,9}$")


def _capability_name(value: str) -> str:
    if len(value) > 255 or not CAPABILITY_NAME.match(value):
        raise ValueError("capability names are dotted lowercase words, e.g. text.summarize")
    return value


def _subtask_name(value: str) -> str:
    if not _SUBTASK_NAME.match(value):
        raise ValueError(
            "subtask names are 1-255 letters, digits, '_', '.', ':' or '-' (no '#' or '/')"
        )
    if value == pointers.TASK_SOURCE:
        raise ValueError('"task" is reserved: {"$ref": "task#/..."} names the task input')
    return value


def _tag(value: str) -> str:
    tag = value.strip().lower()
    if not tag or len(tag) > 100:
        raise ValueError("tags are 1-100 characters")
    return tag


def _pointer(value: str) -> str:
    try:
        pointers.parse(value)
    except pointers.PointerError as exc:
        raise ValueError(str(exc)) from exc
    return value


def _schema_document(value: Any) -> Any:
    if not isinstance(value, dict | bool):
        raise ValueError("a JSON Schema is an object or a boolean")
    return value


def _currency(value: str) -> str:
    if not _CURRENCY.match(value):
        raise ValueError("currency is 3-10 uppercase letters or digits, e.g. USD")
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(decimal_text("money must be a decimal string")),
    AfterValidator(non_negative_amount()),
]
CapabilityName = Annotated[StrictStr, AfterValidator(_capability_name)]
SubtaskName = Annotated[StrictStr, AfterValidator(_subtask_name)]
Tag = Annotated[StrictStr, AfterValidator(_tag)]
Pointer = Annotated[StrictStr, AfterValidator(_pointer)]
JsonSchema = Annotated[Any, AfterValidator(_schema_document)]
Currency = Annotated[StrictStr, AfterValidator(_currency)]
AgentId = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Constraints(_Input):
    """Limits on the agent chosen for a subtask."""

    min_trust: Annotated[Decimal, Field(ge=0, le=100)] | None = None
    max_price: Money | None = None
    max_latency_ms: Annotated[StrictInt, Field(gt=0)] | None = None


class SubtaskSpec(_Input):
    """One node of the task graph."""

    name: SubtaskName
    description: Annotated[StrictStr, Field(max_length=10_000)] | None = None
    capability: CapabilityName
    input: Any = Field(default_factory=dict)
    depends_on: Annotated[list[StrictStr], Field(max_length=MAX_SUBTASKS)] = Field(
        default_factory=list
    )
    constraints: Constraints | None = None
    agent_id: AgentId | None = None
    output_mapping: dict[Pointer, Pointer] | None = None


class TaskSubmission(_Input):
    """The body of ``POST /v1/tasks`` (SPEC 4)."""

    name: Annotated[StrictStr, Field(min_length=1, max_length=255)]
    description: Annotated[StrictStr, Field(max_length=10_000)] | None = None
    priority: Priority = "NORMAL"
    deadline: AwareDatetime | None = None
    timeout_seconds: Annotated[StrictInt, Field(gt=0, le=86_400)] | None = None
    cost_limit: Money | None = None
    currency: Currency = "USD"
    max_retries: Annotated[StrictInt, Field(ge=0, le=100)] = 3
    backoff_strategy: BackoffStrategy = "exponential"
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] = Field(default_factory=list)
    dependencies: Annotated[list[UUID], Field(max_length=MAX_DEPENDENCIES)] = Field(
        default_factory=list
    )
    input_schema: JsonSchema = Field(default_factory=dict)
    output_schema: JsonSchema = Field(default_factory=dict)
    input: Any = Field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    subtasks: Annotated[list[SubtaskSpec], Field(min_length=1, max_length=MAX_SUBTASKS)]


class AttemptResult(_Input):
    """``POST /v1/subtasks/{id}/result``: the outcome of a 202-accepted attempt."""

    attempt: Annotated[StrictInt, Field(ge=1)]
    output: Any = None
    cost: Money | None = None
    error: Annotated[StrictStr, Field(max_length=2000)] | None = None
    retryable: bool = True


def _location(parts: tuple[int | str, ...]) -> str:
    return pointers.join("", *parts)


def parse_submission(data: Any) -> TaskSubmission:
    """Validate a submission body; ``InvalidInput`` names the first culprit as a pointer."""
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object", field="")
    try:
        return TaskSubmission.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        field = _location(tuple(errors[0]["loc"]))
        raise InvalidInput(
            f"{field}: {errors[0]['msg']}",
            field=field,
            extra={
                "errors": [
                    {"field": _location(tuple(e["loc"])), "message": e["msg"]} for e in errors
                ]
            },
        ) from exc


# ---------------------------------------------------------------------------- resources


class Resource(BaseModel):
    """Base of API resources: lenient on input, so clients tolerate fields added later."""

    model_config = ConfigDict(extra="ignore")


class Task(Resource):
    """A task as stored, with its live subtask counts."""

    task_id: UUID
    name: str
    description: str | None
    created_by: str
    created_at: datetime
    status: TaskStatusName
    priority: Priority
    deadline: datetime | None
    timeout_seconds: int | None
    started_at: datetime | None
    completed_at: datetime | None
    input_schema: Any
    output_schema: Any
    actual_input: Any
    actual_output: Any
    cost_limit: Decimal | None
    estimated_cost: Decimal | None
    actual_cost: Decimal
    currency: str
    max_retries: int
    current_retries: int
    backoff_strategy: BackoffStrategy
    tags: list[str]
    dependencies: list[UUID]
    metadata: dict[str, Any] | None
    error_code: str | None
    error: str | None
    audit_cid: str | None
    subtask_counts: dict[str, int] = Field(default_factory=dict)

    @field_serializer("cost_limit", "estimated_cost", "actual_cost")
    def _money_out(self, value: Decimal | None) -> str | None:
        return None if value is None else f"{value:.4f}"


class Subtask(Resource):
    """A subtask with its current (or last) attempt."""

    subtask_id: UUID
    parent_task_id: UUID
    name: str
    description: str | None
    capability_name: str
    status: SubtaskStatusName
    priority: int
    depends_on: list[UUID]
    input: Any
    resolved_input: Any
    output: Any
    output_mapping: dict[str, str] | None
    constraints: dict[str, Any] | None
    pinned_agent_id: str | None
    assigned_agent_id: str | None
    capability_id: str | None
    attempt: int
    failures: int
    next_attempt_at: datetime | None
    lease_expires_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    cost: Decimal
    quoted_price: Decimal | None
    transaction_id: UUID | None
    error_code: str | None
    error: str | None
    created_at: datetime

    @field_serializer("cost", "quoted_price")
    def _money_out(self, value: Decimal | None) -> str | None:
        return None if value is None else f"{value:.4f}"


class TaskStatus(Resource):
    """The compact live status kept in Redis ``task:status:{id}``."""

    task_id: UUID
    created_by: str
    status: TaskStatusName
    version: int
    subtasks: dict[str, int]
    progress: float
    actual_cost: str
    reserved_cost: str
    cost_limit: str | None
    error_code: str | None = None
    updated_at: datetime


class Event(Resource):
    """One row of the execution log."""

    log_id: int
    task_id: UUID
    subtask_id: UUID | None
    event_type: str
    message: str | None
    error_code: str | None
    timestamp: datetime
    metadata: dict[str, Any] | None


class TaskPage(Resource):
    """A page of tasks, newest first."""

    items: list[Task]
    next_cursor: str | None


class SubtaskPage(Resource):
    """A task's subtasks in submission order."""

    items: list[Subtask]
    next_cursor: str | None


class EventPage(Resource):
    """A page of events after a cursor (the last ``log_id`` seen)."""

    items: list[Event]
    next_cursor: str | None
