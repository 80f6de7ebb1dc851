"""Capabilities: publish, list, change, deprecate and remove (SPEC 3)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from dukenet.api.auth import CurrentAgent, rate_limit, require_self
from dukenet.api.deps import ServicesDep
from dukenet.api.routes.agents import AgentId, json_response, problem_responses
from dukenet.registry import capabilities
from dukenet.registry.inputs import CapabilitySpec, CapabilityUpdate
from dukenet.registry.models import Capability, CapabilityPage

router = APIRouter(prefix="/v1", tags=["capabilities"])

CapabilityId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{64}$", description="sha256 of agent_id:name:version")
]


@router.post(
    "/agents/{agent_id}/capabilities",
    status_code=201,
    response_model=Capability,
    dependencies=[Depends(rate_limit("write", authenticated=True))],
    responses=problem_responses(401, 403, 404, 409, 422, 429),
)
async def add_capability(
    agent_id: AgentId, body: CapabilitySpec, current: CurrentAgent, services: ServicesDep
) -> Response:
    """Publish a capability. Schemas must be valid JSON Schema Draft 2020-12 (422
    ``SCHEMA_INVALID`` points inside the schema); the same name and version twice is 409."""
    require_self(agent_id, current)
    capability = await capabilities.add_capability(services.db, services.cache, agent_id, body)
    return json_response(capability, 201, location=f"/v1/capabilities/{capability.capability_id}")


@router.get(
    "/agents/{agent_id}/capabilities",
    response_model=CapabilityPage,
    dependencies=[Depends(rate_limit("read"))],
    responses=problem_responses(404, 422, 429),
)
async def list_capabilities(
    agent_id: AgentId,
    services: ServicesDep,
    include_deprecated: bool = True,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """An agent's capabilities by name, keyset-paginated."""
    page = await capabilities.list_capabilities(
        services.db, agent_id, include_deprecated=include_deprecated, cursor=cursor, limit=limit
    )
    return json_response(page)


@router.get(
    "/capabilities/{capability_id}",
    response_model=Capability,
    dependencies=[Depends(rate_limit("read"))],
    responses=problem_responses(404, 422, 429),
)
async def get_capability(capability_id: CapabilityId, services: ServicesDep) -> Response:
    """One capability."""
    return json_response(await capabilities.get_capability(services.db, capability_id))


@router.patch(
    "/capabilities/{capability_id}",
    response_model=Capability,
    dependencies=[Depends(rate_limit("write", authenticated=True))],
    responses=problem_responses(401, 403, 404, 422, 429),
)
async def update_capability(
    capability_id: CapabilityId,
    body: CapabilityUpdate,
    current: CurrentAgent,
    services: ServicesDep,
) -> Response:
    """Change your capability; ``{"deprecated": true}`` deprecates it (kept, but no longer
    selected for new work)."""
    capability = await capabilities.update_capability(
        services.db, services.cache, capability_id, current, body
    )
    return json_response(capability)


@router.delete(
    "/capabilities/{capability_id}",
    status_code=204,
    dependencies=[Depends(rate_limit("write", authenticated=True))],
    responses=problem_responses(401, 403, 404, 429),
)
async def delete_capability(
    capability_id: CapabilityId, current: CurrentAgent, services: ServicesDep
) -> Response:
    """Remove your capability."""
    await capabilities.delete_capability(services.db, services.cache, capability_id, current)
    return Response(status_code=204)
