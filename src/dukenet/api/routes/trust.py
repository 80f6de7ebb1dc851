"""Trust: ratings, trust breakdown and history, owner proofs, and the operator's fraud view."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from dukenet.api.auth import AdminToken, CurrentAgent, rate_limit, require_self
from dukenet.api.deps import ServicesDep
from dukenet.api.routes.agents import AgentId, json_response, problem_responses
from dukenet.config import Settings
from dukenet.registry.cache import AgentCache
from dukenet.runtime import Services
from dukenet.store.cache import Cache
from dukenet.trust import events, explain, fraud, owners, ratings
from dukenet.trust.models import (
    FlaggedAgentPage,
    FraudFlag,
    OwnerProof,
    OwnerProofChallenge,
    Rating,
    RatingPage,
    TrustBreakdown,
)
from dukenet.trust.parameters import TrustParameters

router = APIRouter(prefix="/v1", tags=["trust"])


async def invalidate_agent_caches(cache: Cache, agent_ids: Sequence[str]) -> None:
    """After a trust change committed: the registry's agent lookups and search results
    (search keys embed ``registry:version``, which the agent invalidation bumps in the
    same round trip)."""
    await AgentCache.of(cache).invalidate(*agent_ids)


_parameters: dict[int, tuple[Settings, TrustParameters]] = {}


def parameters(services: Services) -> TrustParameters:
    """The trust parameters of this process's settings (built once per settings object)."""
    found = _parameters.get(id(services.settings))
    if found is None or found[0] is not services.settings:
        found = (services.settings, TrustParameters.from_settings(services.settings))
        _parameters[id(services.settings)] = found
    return found[1]


class RatingInput(BaseModel):
    """A rating of an agent for a task the rater created."""

    model_config = ConfigDict(extra="forbid")

    task_id: UUID
    rating: Annotated[Decimal, Field(ge=0, le=5, decimal_places=2, description="0-5")]
    review: Annotated[str | None, Field(max_length=ratings.MAX_REVIEW_CHARS)] = None


class OwnerProofInput(BaseModel):
    """An EIP-191 signature of the owner proof message by the agent's owner address."""

    model_config = ConfigDict(extra="forbid")

    signature: Annotated[str, Field(min_length=1, max_length=200)]


class ClearFlag(BaseModel):
    """Why the operator clears a flag."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=1000)]


@router.post(
    "/agents/{agent_id}/ratings",
    status_code=201,
    response_model=Rating,
    dependencies=[Depends(rate_limit("write", authenticated=True))],
    responses=problem_responses(401, 403, 404, 409, 422, 429),
)
async def rate_agent(
    agent_id: AgentId, body: RatingInput, current: CurrentAgent, services: ServicesDep
) -> Response:
    """Rate an agent for a COMPLETED task you created and it worked on, within 30 days of
    completion, once per task. 403 ``SELF_RATING`` / ``NOT_TASK_CREATOR``, 404
    ``TASK_NOT_FOUND``, 409 ``TASK_NOT_COMPLETED`` / ``RATING_WINDOW_CLOSED`` /
    ``RATING_EXISTS``, 422 ``AGENT_NOT_IN_TASK`` or naming the invalid field."""
    rating = await ratings.submit_rating(
        services.db,
        services.cache,
        services.network_key,
        agent_id=agent_id,
        rater_id=current,
        task_id=body.task_id,
        rating=body.rating,
        review=body.review,
        params=parameters(services),
    )
    return json_response(
        rating, 201, location=f"/v1/agents/{agent_id}/ratings?rating_id={rating.rating_id}"
    )


@router.get(
    "/agents/{agent_id}/ratings",
    response_model=RatingPage,
    dependencies=[Depends(rate_limit("read"))],
    responses=problem_responses(404, 422, 429),
)
async def list_ratings(
    agent_id: AgentId,
    services: ServicesDep,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    """An agent's ratings, newest first (``next_cursor`` for the next page)."""
    page = await ratings.list_ratings(services.db, agent_id, cursor=cursor, limit=limit)
    return json_response(page)


@router.get(
    "/agents/{agent_id}/trust",
    response_model=TrustBreakdown,
    dependencies=[Depends(rate_limit("read"))],
    responses=problem_responses(404, 422, 429),
)
async def get_trust(
    agent_id: AgentId,
    services: ServicesDep,
    history: Annotated[bool, Query(description="Include the trust_records series")] = False,
    cursor: Annotated[
        int | None, Query(ge=1, description="history: next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="history page size")] = 100,
) -> Response:
    """The trust score with each component's weight, value, points and inputs, penalties,
    fraud flags and network trust; with ``history=1`` the trust records, newest first."""
    found = await explain.breakdown(
        services.db, agent_id, parameters(services), history=history, before=cursor, limit=limit
    )
    return json_response(found)


@router.get(
    "/agents/{agent_id}/owner-proof",
    response_model=OwnerProofChallenge,
    dependencies=[Depends(rate_limit("read"))],
    responses=problem_responses(404, 422, 429),
)
async def get_owner_proof(agent_id: AgentId, services: ServicesDep) -> Response:
    """The message the agent's owner address signs (EIP-191), and the current proof."""
    return json_response(await owners.owner_challenge(services.db, agent_id))


@router.put(
    "/agents/{agent_id}/owner-proof",
    response_model=OwnerProof,
    dependencies=[Depends(rate_limit("write", authenticated=True))],
    responses=problem_responses(401, 403, 404, 409, 422, 429),
)
async def prove_owner(
    agent_id: AgentId, body: OwnerProofInput, current: CurrentAgent, services: ServicesDep
) -> Response:
    """Prove your owner_address with its EIP-191 signature of the owner proof message.
    409 ``OWNER_ADDRESS_MISSING``, 422 ``OWNER_PROOF_INVALID``."""
    require_self(agent_id, current)
    proof = await owners.prove_owner(
        services.db, services.cache, agent_id, body.signature, parameters(services)
    )
    return json_response(proof)


@router.get(
    "/admin/fraud",
    response_model=FlaggedAgentPage,
    tags=["operator"],
    responses=problem_responses(401, 403, 422),
)
async def list_fraud(
    _: AdminToken,
    services: ServicesDep,
    include_cleared: bool = False,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    """Agents with open fraud flags and the reasons (``include_cleared`` for all flags)."""
    page = await fraud.list_flagged(
        services.db, include_cleared=include_cleared, cursor=cursor, limit=limit
    )
    return json_response(page)


@router.post(
    "/admin/fraud/{flag_id}/clear",
    response_model=FraudFlag,
    tags=["operator"],
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def clear_fraud_flag(
    flag_id: Annotated[int, Path(ge=1)], body: ClearFlag, _: AdminToken, services: ServicesDep
) -> Response:
    """Clear a fraud flag (the same evidence is never raised again); trust is recomputed.
    404 ``FRAUD_FLAG_NOT_FOUND``, 409 ``FRAUD_FLAG_CLEARED``."""
    flag = await events.clear_fraud_flag(
        services.db, services.cache, flag_id, body.reason, parameters(services)
    )
    return json_response(flag)
