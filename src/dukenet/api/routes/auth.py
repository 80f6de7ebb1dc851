"""Challenge-response login and bearer sessions (SPEC 2)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from dukenet.api.auth import Credentials, bearer_token, hit_rate_limit, session_store
from dukenet.api.deps import ServicesDep
from dukenet.api.routes.agents import json_response, problem_responses
from dukenet.registry.inputs import LoginChallengeRequest, LoginRequest
from dukenet.registry.models import Challenge, Session

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post(
    "/challenge", response_model=Challenge, responses=problem_responses(403, 404, 422, 429)
)
async def challenge(
    body: LoginChallengeRequest, request: Request, services: ServicesDep
) -> Response:
    """A single-use challenge (60 s) to sign with the agent's key."""
    await hit_rate_limit(request, services, body.agent_id, "auth")
    return json_response(await session_store(services).issue_challenge(body.agent_id))


@router.post(
    "/session", response_model=Session, responses=problem_responses(401, 403, 404, 422, 429)
)
async def open_session(body: LoginRequest, request: Request, services: ServicesDep) -> Response:
    """Exchange a signed challenge for a bearer token (``Authorization: Bearer <token>``)."""
    await hit_rate_limit(request, services, body.agent_id, "auth")
    session = await session_store(services).open_session(
        body.agent_id, body.challenge, body.signature
    )
    return json_response(session)


@router.delete("/session", status_code=204, responses=problem_responses(401))
async def close_session(
    services: ServicesDep,
    credentials: Credentials,
) -> Response:
    """Log out: the bearer token stops working at once."""
    await session_store(services).close_session(bearer_token(credentials))
    return Response(status_code=204)
