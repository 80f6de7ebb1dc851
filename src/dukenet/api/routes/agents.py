"""Agents: register, look up, list, update, tag, heartbeat and deregister (SPEC 2-3)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from dukenet.api.auth import (
    OPTIONAL_BEARER,
    CurrentAgent,
    caller_of,
    count_request,
    hit_and_get,
    rate_limit,
    require_self,
)
from dukenet.api.deps import ServicesDep, services_of
from dukenet.registry import agents, heartbeats
from dukenet.registry.cache import AgentCache
from dukenet.registry.inputs import AgentUpdate, Registration, TagsUpdate
from dukenet.registry.models import Agent, AgentPage, Heartbeat, SignedRegistration, Tags
from dukenet.runtime import Services

router = APIRouter(prefix="/v1", tags=["agents"])

AgentId = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="sha256 of the public key")]
JSON = "application/json"


def json_response(model: BaseModel, status_code: int = 200, **headers: str) -> Response:
    """Serialize a resource once (no second validation pass)."""
    return Response(
        model.model_dump_json(), status_code=status_code, media_type=JSON, headers=headers
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem+json statuses a route can answer."""
    return {
        s: {"description": "problem+json", "content": {"application/problem+json": {}}}
        for s in statuses
    }


@router.post(
    "/agents",
    status_code=201,
    response_model=Agent,
    dependencies=[Depends(rate_limit("register"))],
    responses=problem_responses(401, 409, 422, 429),
)
async def register_agent(body: Registration, request: Request, services: ServicesDep) -> Response:
    """Register with a payload signed by the agent's key (RFC 8785 JSON without ``signature``).

    401 ``INVALID_SIGNATURE`` for a bad signature or a timestamp outside ±5 minutes, 409
    ``AGENT_EXISTS`` for a known key, 422 naming the field for anything malformed.
    """
    return await _register(services, await request.json(), body)


async def registration(request: Request, payload: dict[str, Any], body: Registration) -> Response:
    """``register_agent`` for a body already parsed and validated, counting the request in
    the ``register`` family itself (``dukenet.api.hot`` serves registrations this way)."""
    services = services_of(request)
    await count_request(request, services, await caller_of(request, services), "register")
    return await _register(services, payload, body)


async def _register(services: Services, payload: dict[str, Any], body: Registration) -> Response:
    agent = await agents.register(
        services.db,
        services.cache,
        payload,
        network_key=services.network_key,
        heartbeat_ttl=services.settings.heartbeat_ttl,
        parsed=body,
    )
    return json_response(agent, 201, location=f"/v1/agents/{agent.agent_id}")


@router.get(
    "/agents/{agent_id}",
    response_model=Agent,
    responses=problem_responses(401, 404, 422, 429),
    openapi_extra=OPTIONAL_BEARER,
)
async def get_agent(agent_id: AgentId, request: Request) -> Response:
    """One agent, served from the ``agent:{id}`` cache (invalidated on every change).

    Counted in the ``read`` rate-limit family (per agent with a session, else per
    address); the count and the cache read share one Redis round trip. The hottest
    read, so it resolves its caller without dependency injection."""
    services = services_of(request)
    caller = await caller_of(request, services)
    key = AgentCache.of(services.cache).key(agent_id)
    cached = await hit_and_get(request, services, caller, "read", key)
    body = await agents.agent_json(services.db, services.cache, agent_id, prefetched=cached)
    return Response(body, media_type=JSON)


@router.get(
    "/agents",
    response_model=AgentPage,
    dependencies=[Depends(rate_limit("read"))],
    responses=problem_responses(422, 429),
)
async def list_agents(
    services: ServicesDep,
    status: Literal["ACTIVE", "INACTIVE", "SUSPENDED"] | None = None,
    tag: Annotated[list[str] | None, Query(description="Agents having all these tags")] = None,
    min_trust: Annotated[Decimal | None, Query(ge=0, le=100)] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    """Registered agents, newest first, with keyset pagination (``next_cursor``)."""
    page = await agents.list_agents(
        services.db, status=status, tags=tag, min_trust=min_trust, cursor=cursor, limit=limit
    )
    return json_response(page)


@router.patch(
    "/agents/{agent_id}",
    response_model=Agent,
    dependencies=[Depends(rate_limit("write", authenticated=True))],
    responses=problem_responses(401, 403, 404, 422, 429),
)
async def update_agent(
    agent_id: AgentId, body: AgentUpdate, current: CurrentAgent, services: ServicesDep
) -> Response:
    """Change your own profile; fields sent as ``null`` are cleared, absent ones kept."""
    require_self(agent_id, current)
    return json_response(await agents.update_agent(services.db, services.cache, agent_id, body))


@router.delete(
    "/agents/{agent_id}",
    status_code=204,
    dependencies=[Depends(rate_limit("write", authenticated=True))],
    responses=problem_responses(401, 403, 404, 429),
)
async def deregister_agent(
    agent_id: AgentId, current: CurrentAgent, services: ServicesDep
) -> Response:
    """Deregister yourself: capabilities and tags go; tasks, transactions, ratings and
    audit records stay. The key cannot register again."""
    require_self(agent_id, current)
    await agents.deregister(services.db, services.cache, agent_id)
    return Response(status_code=204)


@router.put(
    "/agents/{agent_id}/tags",
    response_model=Tags,
    dependencies=[Depends(rate_limit("write", authenticated=True))],
    responses=problem_responses(401, 403, 404, 422, 429),
)
async def set_tags(
    agent_id: AgentId, body: TagsUpdate, current: CurrentAgent, services: ServicesDep
) -> Response:
    """Replace your tag set (trimmed, lowercased, ≤ 100 characters each, at most 32)."""
    require_self(agent_id, current)
    return json_response(await agents.set_tags(services.db, services.cache, agent_id, body.tags))


@router.post(
    "/agents/{agent_id}/heartbeat",
    response_model=Heartbeat,
    dependencies=[Depends(rate_limit("heartbeat", authenticated=True))],
    responses=problem_responses(401, 403, 404, 429),
)
async def heartbeat(agent_id: AgentId, current: CurrentAgent, services: ServicesDep) -> Response:
    """Say you are alive; an INACTIVE agent becomes ACTIVE again."""
    require_self(agent_id, current)
    beat = await heartbeats.record_heartbeat(
        services.db, services.cache, agent_id, ttl=services.settings.heartbeat_ttl
    )
    return json_response(beat)


@router.get(
    "/agents/{agent_id}/registration",
    response_model=SignedRegistration,
    dependencies=[Depends(rate_limit("read"))],
    responses=problem_responses(404, 422, 429),
)
async def get_registration(agent_id: AgentId, services: ServicesDep) -> Response:
    """The signed registration exactly as received, for anyone to verify."""
    return json_response(await agents.get_registration(services.db, agent_id))
