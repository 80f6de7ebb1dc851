"""Tasks (SPEC 4): submit a task graph, read it, follow its events, cancel it.

Tasks belong to their creator: every route needs a session, and another agent's task is
403. Errors: 402 ``INSUFFICIENT_FUNDS`` (the estimate is not covered), 404
``TASK_NOT_FOUND``, 409 ``TASK_FINISHED``, 422 naming the field (``INVALID_GRAPH``,
``INVALID_REFERENCE``, ``SCHEMA_INVALID``, ``NO_ELIGIBLE_AGENT``, ``COST_LIMIT_EXCEEDED``,
``DEADLINE_PASSED``, ``DEPENDENCY_NOT_FOUND``, ``DEPENDENCY_FAILED``, ...).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

from dukenet.api.auth import CurrentAgent, rate_limit
from dukenet.api.deps import ServicesDep
from dukenet.api.routes.agents import problem_responses
from dukenet.errors import BadRequest
from dukenet.orchestration import tasks
from dukenet.orchestration.models import (
    EventPage,
    SubtaskPage,
    Task,
    TaskPage,
    TaskStatus,
    TaskStatusName,
    TaskSubmission,
)
from dukenet.orchestration.submission import submit_task

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])
READ = Depends(rate_limit("read", authenticated=True))
WRITE = Depends(rate_limit("write", authenticated=True))
Limit = Annotated[int, Query(ge=1, le=tasks.MAX_PAGE, description="Page size")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]


def _task_response(task: Task, status_code: int, **headers: str) -> JSONResponse:
    return JSONResponse(task.model_dump(mode="json"), status_code=status_code, headers=headers)


@router.post(
    "",
    status_code=201,
    response_model=Task,
    dependencies=[WRITE],
    responses=problem_responses(401, 402, 422, 429),
)
async def create_task(
    body: TaskSubmission,
    request: Request,
    caller: CurrentAgent,
    services: ServicesDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="A repeat with the same key and body returns the task created first.",
        ),
    ] = None,
) -> JSONResponse:
    """Submit a task with its subtask graph. The task starts at once (roots READY) unless it
    waits for ``dependencies``; ``estimated_cost`` is the cheapest feasible plan."""
    raw: Any = await request.json()
    task_id, created = await submit_task(services, caller, raw, idempotency_key=idempotency_key)
    task = await tasks.get_task(services, task_id, caller)
    headers = {"Location": f"/v1/tasks/{task_id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return _task_response(task, 201, **headers)


@router.get(
    "", response_model=TaskPage, dependencies=[READ], responses=problem_responses(401, 422, 429)
)
async def list_tasks(
    caller: CurrentAgent,
    services: ServicesDep,
    status: Annotated[TaskStatusName | None, Query(description="Only tasks in this status")] = None,
    tag: Annotated[
        str | None, Query(max_length=100, description="Only tasks with this tag")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> TaskPage:
    """Your tasks, newest first."""
    return await tasks.list_tasks(
        services, caller, status=status, tag=tag, cursor=cursor, limit=limit
    )


@router.get(
    "/{task_id}",
    response_model=Task,
    dependencies=[READ],
    responses=problem_responses(401, 403, 404, 429),
)
async def get_task(task_id: UUID, caller: CurrentAgent, services: ServicesDep) -> Task:
    """The task: status, output, cost, error and audit CID once it ended, live counts."""
    return await tasks.get_task(services, task_id, caller)


@router.get(
    "/{task_id}/status",
    response_model=TaskStatus,
    dependencies=[READ],
    responses=problem_responses(401, 403, 404, 429),
)
async def get_task_status(
    task_id: UUID, caller: CurrentAgent, services: ServicesDep
) -> dict[str, Any]:
    """The compact live status (Redis ``task:status:{id}``): counts per subtask state,
    progress and cost so far."""
    return await tasks.task_status(services, task_id, caller)


@router.get(
    "/{task_id}/subtasks",
    response_model=SubtaskPage,
    dependencies=[READ],
    responses=problem_responses(401, 403, 404, 422, 429),
)
async def list_subtasks(
    task_id: UUID,
    caller: CurrentAgent,
    services: ServicesDep,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> SubtaskPage:
    """The task's subtasks in submission order, with agent, attempt, cost and output."""
    return await tasks.list_subtasks(services, task_id, caller, cursor=cursor, limit=limit)


@router.get(
    "/{task_id}/events",
    response_model=EventPage,
    dependencies=[READ],
    responses={
        **problem_responses(401, 403, 404, 422, 429),
        200: {
            "description": "A JSON page, or with `Accept: text/event-stream` Server-Sent "
            "Events (`id` = log_id; resume with `Last-Event-ID`)",
            "content": {"application/json": {}, "text/event-stream": {}},
        },
    },
)
async def task_events(
    task_id: UUID,
    request: Request,
    caller: CurrentAgent,
    services: ServicesDep,
    cursor: Cursor = None,
    limit: Limit = 100,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    """The execution log, oldest first: a page after ``cursor``, or a live stream."""
    if "text/event-stream" not in request.headers.get("accept", ""):
        page = await tasks.list_events(services, task_id, caller, cursor=cursor, limit=limit)
        return JSONResponse(page.model_dump(mode="json"))
    await tasks.authorize_events(services, task_id, caller)
    resume_from = last_event_id or cursor or "0"
    try:
        after = int(resume_from)
    except ValueError as exc:
        raise BadRequest("Last-Event-ID must be a log_id from this stream") from exc

    async def stream() -> AsyncIterator[dict[str, Any]]:
        async for event in tasks.follow_events(services, task_id, after=after):
            yield {
                "id": str(event.log_id),
                "event": event.event_type.lower(),
                "data": json.dumps(event.model_dump(mode="json"), separators=(",", ":")),
            }

    return EventSourceResponse(stream(), ping=15)


@router.post(
    "/{task_id}/cancel",
    response_model=Task,
    dependencies=[WRITE],
    responses=problem_responses(401, 403, 404, 409, 429),
)
async def cancel_task(task_id: UUID, caller: CurrentAgent, services: ServicesDep) -> Task:
    """Cancel your unfinished task: scheduling stops, open subtasks are CANCELLED and held
    payments go back to you. 409 ``TASK_FINISHED`` if it already ended."""
    return await tasks.cancel_task(services, task_id, caller)
