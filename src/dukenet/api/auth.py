"""Authentication, authorization and rate-limit dependencies for every router.

* ``CurrentAgent``: the authenticated agent's id from ``Authorization: Bearer <token>``
  (401 ``UNAUTHORIZED`` without a live session, 403 ``AGENT_SUSPENDED`` for a suspended
  agent, 503 ``CACHE_UNAVAILABLE`` while Redis, which holds sessions, is down).
* ``AdminToken``: the operator's ``DUKENET_ADMIN_TOKEN`` (401 when missing, 403 when wrong
  or when no operator token is configured).
* ``require_self(agent_id, current)``: 403 ``FORBIDDEN`` unless they are the same agent.
* ``hit_and_get(...)``: the same count for a hot cached read, with the cache GET in the
  same Redis round trip.
* ``rate_limit(family)``: a route dependency counting the caller's requests in that route
  family (per agent when authenticated, per client address otherwise); 429 ``RATE_LIMITED``
  with ``Retry-After``. Fails open while Redis is down (see ``dukenet.registry.ratelimit``).
  An authenticated agent refused with 429 is noted for trust (the ``rate_limited``
  penalty, ``trust.events.note_rate_limited``).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from dukenet.api.deps import ServicesDep
from dukenet.errors import Forbidden, RateLimited, Unauthorized
from dukenet.registry.ratelimit import RateLimiter, parse_limits
from dukenet.registry.sessions import SessionStore
from dukenet.runtime import Services
from dukenet.trust import events as trust_events

_bearer = HTTPBearer(auto_error=False, description="A session token from POST /v1/auth/session")
_admin_bearer = HTTPBearer(
    scheme_name="OperatorToken", auto_error=False, description="DUKENET_ADMIN_TOKEN"
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def session_store(services: Services) -> SessionStore:
    """The session store for this process's services."""
    return SessionStore(services.db, services.cache, services.settings.session_ttl)


def bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The bearer token, or 401 when the header is missing or not ``Bearer``."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized("send Authorization: Bearer <token> (see POST /v1/auth/session)")
    return credentials.credentials


async def current_agent(request: Request, services: ServicesDep, credentials: Credentials) -> str:
    """The id of the agent whose live session token came with the request (already known
    when the route's ``rate_limit(..., authenticated=True)`` authenticated it)."""
    known: str | None = getattr(request.state, "agent_id", None)
    if known is not None:
        return known
    return await session_store(services).authenticate(bearer_token(credentials))


async def optional_agent(
    request: Request, services: ServicesDep, credentials: Credentials
) -> str | None:
    """Like ``current_agent`` for routes that anonymous callers may use too."""
    if credentials is None:
        return None
    return await current_agent(request, services, credentials)


async def caller_of(request: Request, services: Services) -> str | None:
    """``optional_agent`` without the dependency machinery, for the hottest read routes:
    the agent of a ``Bearer`` token, ``None`` without one (or with another scheme)."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return await session_store(services).authenticate(token.strip())


# How ``caller_of`` routes document their optional bearer session in OpenAPI.
OPTIONAL_BEARER: dict[str, Any] = {"security": [{"HTTPBearer": []}, {}]}

CurrentAgent = Annotated[str, Depends(current_agent)]
OptionalAgent = Annotated[str | None, Depends(optional_agent)]


def require_self(agent_id: str, current: str) -> None:
    """403 ``FORBIDDEN`` unless the acting agent is ``agent_id`` itself."""
    if agent_id != current:
        raise Forbidden("an agent may change only its own resources")


async def admin_token(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
) -> None:
    """Operator routes: the bearer token must equal ``DUKENET_ADMIN_TOKEN``."""
    expected = services.settings.admin_token
    if credentials is None or not credentials.credentials:
        raise Unauthorized("operator routes need Authorization: Bearer <DUKENET_ADMIN_TOKEN>")
    if expected is None:
        raise Forbidden("operator routes are disabled: DUKENET_ADMIN_TOKEN is not set")
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise Forbidden("wrong operator token")


AdminToken = Annotated[None, Depends(admin_token)]


def limiter(request: Request, services: Services) -> RateLimiter:
    """The process's rate limiter (created on first use from ``DUKENET_RATE_LIMITS``)."""
    found: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if found is None or found.cache is not services.cache:
        found = RateLimiter(services.cache, parse_limits(services.settings.rate_limits))
        request.app.state.rate_limiter = found
    return found


def client_address(request: Request) -> str:
    """The caller's address for anonymous rate limits."""
    return f"ip:{request.client.host if request.client else 'unknown'}"


async def hit_as_agent(request: Request, services: Services, agent_id: str, family: str) -> None:
    """Count a request of an authenticated agent; a 429 also counts against its trust."""
    try:
        await limiter(request, services).hit(agent_id, family)
    except RateLimited:
        await trust_events.note_rate_limited(services.db, services.cache, agent_id)
        raise


async def hit_and_get(
    request: Request, services: Services, caller: str | None, family: str, key: str
) -> bytes | None:
    """Count this request like ``rate_limit(family)`` and GET the (prefixed) cache ``key``
    in the same Redis round trip; ``None`` for a miss or while Redis is down."""
    counter = limiter(request, services)
    try:
        _, value = await counter.hit_and_get(caller or client_address(request), family, key)
    except RateLimited:
        if caller is not None:
            await trust_events.note_rate_limited(services.db, services.cache, caller)
        raise
    return value


async def count_request(
    request: Request, services: Services, caller: str | None, family: str
) -> None:
    """Count a request in ``family``: per agent for a session's ``caller``, else per address."""
    if caller is None:
        await limiter(request, services).hit(client_address(request), family)
    else:
        await hit_as_agent(request, services, caller, family)


async def authenticate_and_count(
    request: Request, services: Services, token: str, family: str
) -> str:
    """The agent of session ``token``, its request counted in ``family`` in the same Redis
    round trip (a 429 also counts against its trust). The agent id is kept in
    ``request.state`` for the route's ``CurrentAgent``."""
    counter = limiter(request, services)
    try:
        caller = await session_store(services).authenticate(token, count=(counter, family))
    except RateLimited:
        await trust_events.note_rate_limited(services.db, services.cache, token.partition(".")[0])
        raise
    request.state.agent_id = caller
    return caller


def request_bearer(request: Request) -> str:
    """The request's bearer token read as ``HTTPBearer`` reads it; 401 without one."""
    header = request.headers.get("authorization")
    scheme, credentials = get_authorization_scheme_param(header)
    if not (header and scheme and credentials) or scheme.lower() != "bearer":
        return bearer_token(None)
    return credentials


def rate_limit(family: str, *, authenticated: bool = False) -> Callable[..., Awaitable[None]]:
    """A dependency counting this request against the caller's ``family`` limit.

    With ``authenticated`` the route requires a session (and shares its ``CurrentAgent``);
    otherwise a bearer token is optional and anonymous callers count per address.
    """
    if authenticated:

        async def per_agent(
            request: Request, services: ServicesDep, credentials: Credentials
        ) -> None:
            await authenticate_and_count(request, services, bearer_token(credentials), family)

        per_agent.__name__ = f"rate_limit_{family}"
        return per_agent

    async def per_caller(request: Request, services: ServicesDep, caller: OptionalAgent) -> None:
        await count_request(request, services, caller, family)

    per_caller.__name__ = f"rate_limit_{family}"
    return per_caller


async def hit_rate_limit(request: Request, services: Services, caller: str, family: str) -> None:
    """Count a request whose caller is known only from the body (e.g. login). Not noted
    for trust: the caller is not authenticated, so anyone could name any agent."""
    await limiter(request, services).hit(caller, family)
