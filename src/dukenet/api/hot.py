"""The hottest routes, served before FastAPI's per-request machinery.

The registry's load is ``GET /v1/agents/{id}`` (the cached agent) and ``POST /v1/agents``
(registration); the marketplace's is ``POST /v1/transactions`` (buy) and ``POST
/v1/transactions/{id}/complete`` (settle). Through FastAPI each request also passes
Starlette's error and exception layers, the router's scan of every route, the dependency
solver and the endpoint wrapper: about as much CPU as a cached read itself. ``HotRoutes``
recognises exactly these requests and calls the same route code directly; everything
else, and every request it does not fully understand, goes to FastAPI unchanged:

* a path parameter must already be in its canonical form (64 lowercase hex characters
  for an agent, a lowercase hyphenated UUID for a transaction), else FastAPI answers;
* a body is taken only when it is a JSON object, sent as JSON, that validates as the
  route's model; any other body (not JSON, no or another content type, empty, a
  validation error, cut off) is replayed to FastAPI, which answers it exactly as before
  (the same 400/422 problem, after the same 401 for a missing session).

Errors the route code raises (``DukenetError``) become the same problem+json responses as
the app's exception handlers give. Each route keeps its OpenAPI entry and its metrics label
(``scope["route"]`` is the FastAPI route).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from uuid import UUID

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dukenet.api.auth import authenticate_and_count, request_bearer
from dukenet.api.deps import services_of
from dukenet.api.problems import dukenet_error_response
from dukenet.api.routes import agents as agent_routes
from dukenet.api.routes import transactions as transaction_routes
from dukenet.errors import DukenetError
from dukenet.market.idempotency import HEADER as IDEMPOTENCY_HEADER
from dukenet.market.inputs import CompleteRequest, PurchaseRequest
from dukenet.registry.inputs import Registration
from dukenet.runtime import Services

AGENT_PATH = re.compile(r"/v1/agents/([0-9a-f]{64})")
COMPLETE_PATH = re.compile(
    r"/v1/transactions/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/complete"
)

# Serves a request given its JSON payload and the route's model validated from it.
Serve = Callable[[Request, Any, Any], Awaitable[Response]]


def _is_json(content_type: bytes | None) -> bool:
    """FastAPI's (strict) test for a JSON body: ``application/json`` or ``+json``."""
    if content_type is None:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body; ``None`` if it never arrived whole (the client went away, or the
    request edge cut it off at the size limit)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out ``body`` once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _parsed(raw: bytes, scope: Scope, model: type[BaseModel]) -> tuple[Any, BaseModel] | None:
    """The JSON payload and the model it validates as, or ``None`` to let FastAPI answer."""
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), None)
    if not raw or not _is_json(content_type):
        return None
    try:
        payload = json.loads(raw)
        return payload, model.model_validate(payload)
    except (ValueError, ValidationError, DukenetError):  # validators raise these too
        return None


def _route(router: APIRouter, path: str, method: str) -> APIRoute:
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path == path and method in (route.methods or ()):
            return route
    raise LookupError(f"no route {method} {path}")


async def _money_caller(request: Request) -> tuple[Services, str, str | None]:
    """What a money route's dependencies give it: the services, the session's agent
    (counted in ``write``) and the ``Idempotency-Key``."""
    services = services_of(request)
    caller = await authenticate_and_count(request, services, request_bearer(request), "write")
    return services, caller, request.headers.get(IDEMPOTENCY_HEADER)


async def _purchase(request: Request, _: Any, body: Any) -> Response:
    services, caller, key = await _money_caller(request)
    return await transaction_routes.purchase(request, services, caller, body, key)


async def _settle(transaction_id: UUID, request: Request, _: Any, body: Any) -> Response:
    services, caller, key = await _money_caller(request)
    return await transaction_routes.settle(request, services, caller, transaction_id, body, key)


class HotRoutes:
    """Serve the hot routes directly; hand the rest to ``fallback`` (the FastAPI stack).
    ``app`` supplies ``state`` (the services)."""

    def __init__(self, app: FastAPI, fallback: ASGIApp) -> None:
        self.app = app
        self.fallback = fallback
        self.read_route = _route(agent_routes.router, "/v1/agents/{agent_id}", "GET")
        self.register_route = _route(agent_routes.router, "/v1/agents", "POST")
        self.purchase_route = _route(transaction_routes.router, "/v1/transactions", "POST")
        self.complete_route = _route(
            transaction_routes.router, "/v1/transactions/{transaction_id}/complete", "POST"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "GET":
                found = AGENT_PATH.fullmatch(path)
                if found is not None:
                    await self._read(scope, receive, send, found.group(1))
                    return
            elif method == "POST":
                if path == "/v1/agents":
                    await self._with_body(
                        scope,
                        receive,
                        send,
                        self.register_route,
                        Registration,
                        agent_routes.registration,
                    )
                    return
                if path == "/v1/transactions":
                    await self._with_body(
                        scope, receive, send, self.purchase_route, PurchaseRequest, _purchase
                    )
                    return
                found = COMPLETE_PATH.fullmatch(path)
                if found is not None:
                    settle = partial(_settle, UUID(found.group(1)))
                    await self._with_body(
                        scope, receive, send, self.complete_route, CompleteRequest, settle
                    )
                    return
        await self.fallback(scope, receive, send)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: APIRoute,
        serve: Callable[[Request], Awaitable[Response]],
    ) -> None:
        scope["app"] = self.app
        scope["route"] = route  # the metrics label is the route template
        request = Request(scope, receive)
        try:
            response = await serve(request)
        except DukenetError as exc:
            response = dukenet_error_response(exc)
        await response(scope, receive, send)

    async def _read(self, scope: Scope, receive: Receive, send: Send, agent_id: str) -> None:
        async def read(request: Request) -> Response:
            return await agent_routes.get_agent(agent_id, request)

        await self._answer(scope, receive, send, self.read_route, read)

    async def _with_body(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: APIRoute,
        model: type[BaseModel],
        serve: Serve,
    ) -> None:
        raw = await _read_body(receive)
        if raw is None:  # FastAPI answers a body that never arrived whole (400, or the 413)
            await self.fallback(scope, _disconnected, send)
            return
        replay = _replaying(raw, receive)
        parsed = _parsed(raw, scope, model)
        if parsed is None:  # FastAPI gives the exact answer it always gave
            await self.fallback(scope, replay, send)
            return
        payload, body = parsed

        async def with_body(request: Request) -> Response:
            return await serve(request, payload, body)

        await self._answer(scope, replay, send, route, with_body)
