"""Operator routes: suspend and reinstate agents (``DUKENET_ADMIN_TOKEN``)."""

from __future__ import annotations

from fastapi import APIRouter, Body, Response

from dukenet.api.auth import AdminToken
from dukenet.api.deps import ServicesDep
from dukenet.api.routes.agents import AgentId, json_response, problem_responses
from dukenet.registry import agents
from dukenet.registry.inputs import StatusChange
from dukenet.registry.models import Agent

router = APIRouter(prefix="/v1/admin", tags=["operator"])


@router.post(
    "/agents/{agent_id}/suspend",
    response_model=Agent,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def suspend(
    agent_id: AgentId, body: StatusChange, _: AdminToken, services: ServicesDep
) -> Response:
    """Suspend an agent (reason recorded): it cannot log in, act or be selected."""
    agent = await agents.suspend(services.db, services.cache, agent_id, body.reason)
    return json_response(agent)


@router.post(
    "/agents/{agent_id}/reinstate",
    response_model=Agent,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def reinstate(
    agent_id: AgentId,
    _: AdminToken,
    services: ServicesDep,
    body: StatusChange | None = Body(None),
) -> Response:
    """Lift a suspension (ACTIVE if the heartbeat is fresh, else INACTIVE)."""
    agent = await agents.reinstate(
        services.db,
        services.cache,
        agent_id,
        body.reason if body else "reinstated by operator",
        heartbeat_ttl=services.settings.heartbeat_ttl,
    )
    return json_response(agent)
