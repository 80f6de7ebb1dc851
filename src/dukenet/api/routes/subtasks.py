"""Subtasks: the assigned agent delivers the result of a long job it accepted with 202."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends

from dukenet.api.auth import CurrentAgent, rate_limit
from dukenet.api.deps import ServicesDep
from dukenet.api.routes.agents import problem_responses
from dukenet.orchestration import tasks
from dukenet.orchestration.models import AttemptResult

router = APIRouter(prefix="/v1/subtasks", tags=["tasks"])


@router.post(
    "/{subtask_id}/result",
    dependencies=[Depends(rate_limit("write", authenticated=True))],
    responses=problem_responses(401, 403, 404, 409, 422, 429),
)
async def post_result(
    subtask_id: UUID, body: AttemptResult, caller: CurrentAgent, services: ServicesDep
) -> dict[str, Any]:
    """``{"attempt", "output", "cost"?}`` or ``{"attempt", "error", "retryable"}`` for the
    attempt the network sent you. 403 unless you are the assigned agent; 409
    ``STALE_ATTEMPT`` when that attempt no longer holds the subtask (the result is ignored);
    an output that breaks the capability's ``output_schema`` fails the attempt."""
    return await tasks.post_result(services, subtask_id, caller, body)
