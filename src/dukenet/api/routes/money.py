"""What the marketplace routes share: the agent-or-operator caller, and running one money
change per database transaction with its ``Idempotency-Key``."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from pydantic import BaseModel

from dukenet.api.auth import Credentials, bearer_token, hit_as_agent, session_store
from dukenet.api.deps import ServicesDep
from dukenet.market import idempotency
from dukenet.market.idempotency import Outcome, RequestKey
from dukenet.runtime import Services
from dukenet.store.postgres import Connection, SerializationConflict

JSON = "application/json"
# A money change that lost a deadlock or serialization race is retried this many times.
ATTEMPTS = 3

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=idempotency.HEADER,
        description="Makes the request safe to repeat: a repeat with the same key and body "
        "returns the original response; the same key with another body is 422.",
    ),
]


@dataclass(frozen=True)
class Caller:
    """Who is calling: an agent with a session, or the operator (``agent_id`` None)."""

    agent_id: str | None

    @property
    def is_operator(self) -> bool:
        """True for the operator token."""
        return self.agent_id is None

    @property
    def scope(self) -> str:
        """Whose idempotency keys this request uses."""
        return "operator" if self.agent_id is None else f"agent:{self.agent_id}"


async def agent_or_operator(
    request: Request, services: ServicesDep, credentials: Credentials
) -> Caller:
    """An agent's session token or the operator's ``DUKENET_ADMIN_TOKEN`` (agents count
    against their ``family`` rate limit; the operator does not)."""
    token = bearer_token(credentials)
    expected = services.settings.admin_token
    if expected is not None and hmac.compare_digest(token.encode(), expected.encode()):
        return Caller(None)
    agent_id = await session_store(services).authenticate(token)
    family = "read" if request.method == "GET" else "write"
    await hit_as_agent(request, services, agent_id, family)
    return Caller(agent_id)


AgentOrOperator = Annotated[Caller, Depends(agent_or_operator)]


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """Serialize a resource once (money as decimal strings)."""
    return Response(model.model_dump_json(), status_code=status_code, media_type=JSON)


def request_key(
    request: Request, scope: str, key: str | None, body: BaseModel
) -> RequestKey | None:
    """The request's ``Idempotency-Key`` with its fingerprint (None without a key)."""
    if key is None:
        return None
    idempotency.check_key(key)
    payload = body.model_dump(mode="json")
    return RequestKey(
        scope, key, idempotency.fingerprint(request.method, request.url.path, payload)
    )


async def run_transaction_action(
    services: Services,
    action: Callable[[Connection], Awaitable[Outcome]],
    *,
    atomic: bool = True,
) -> Response:
    """Run a transaction route's ``action`` (which claims the key and stores its response
    itself) inside one database transaction, or, if it is one statement (``atomic`` False),
    on a connection without one; retried when it lost a deadlock or serialization race."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            if atomic:
                async with services.db.transaction() as conn:
                    outcome = await action(conn)
            else:
                async with services.db.acquire() as conn:
                    outcome = await action(conn)
        except SerializationConflict:
            if attempt == ATTEMPTS:
                raise
            continue
        headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
        return Response(
            outcome.body, status_code=outcome.status_code, media_type=JSON, headers=headers
        )
    raise AssertionError("unreachable")


async def run_money_change(
    services: Services,
    request: Request,
    *,
    scope: str,
    key: str | None,
    payload: Any,
    change: Callable[[Connection], Awaitable[BaseModel]],
    status_code: int = 200,
) -> Response:
    """Run ``change`` in one database transaction, with the ``Idempotency-Key`` claimed and
    its response stored in that same transaction; a repeat replays the stored response
    (with ``Idempotent-Replayed: true``)."""
    if key is not None:
        idempotency.check_key(key)
    fingerprint = idempotency.fingerprint(request.method, request.url.path, payload)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with services.db.transaction() as conn:
                if key is not None:
                    stored = await idempotency.claim(conn, scope, key, fingerprint)
                    if stored is not None:
                        return Response(
                            stored.body,
                            status_code=stored.status_code,
                            media_type=JSON,
                            headers={"Idempotent-Replayed": "true"},
                        )
                body = (await change(conn)).model_dump_json()
                if key is not None:
                    await idempotency.remember(conn, scope, key, status_code, body)
            return Response(body, status_code=status_code, media_type=JSON)
        except SerializationConflict:
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")
