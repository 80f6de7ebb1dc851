"""The two hottest routes, served before FastAPI's per-request machinery.

``GET /v1/agents/{id}`` (the cached agent) and ``POST /v1/agents`` (registration) are the
registry's load. Through FastAPI each request also passes Starlette's error and exception
layers, the router's scan of every route, the dependency solver and the endpoint wrapper:
about as much CPU as the cached read itself. ``HotRoutes`` recognises exactly these two
requests and calls the same route code directly; everything else, and every request it
does not fully understand, goes to FastAPI unchanged:

* the agent read takes only a 64-hex id (a malformed id gets FastAPI's 422);
* a registration is taken only when its body is a JSON object that validates as a
  ``Registration``; any other body (not JSON, another content type, a validation error)
  is replayed to FastAPI, which answers it exactly as before (same 400/422 problem).

Errors the route code raises (``DukenetError``) become the same problem+json responses as
the app's exception handlers give. The route keeps its OpenAPI entry and its metrics label
(``scope["route"]`` is the FastAPI route).
"""

from __future__ import annotations

import json
import re

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dukenet.api.problems import dukenet_error_response
from dukenet.api.routes import agents as agent_routes
from dukenet.errors import DukenetError
from dukenet.registry.inputs import Registration

AGENT_PATH = re.compile(r"/v1/agents/([0-9a-f]{64})")
REGISTRATION_PATH = "/v1/agents"


def _is_json(content_type: bytes | None) -> bool:
    """FastAPI's test for a JSON body: no content type, or ``application/json`` / ``+json``."""
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


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


class HotRoutes:
    """Serve the cached agent read and registration directly; hand the rest to ``fallback``
    (the FastAPI stack). ``app`` supplies ``state`` (the services)."""

    def __init__(self, app: FastAPI, fallback: ASGIApp) -> None:
        self.app = app
        self.fallback = fallback
        self._read_route: APIRoute | None = None
        self._register_route: APIRoute | None = None

    @staticmethod
    def _route(path: str, method: str) -> APIRoute | None:
        for route in agent_routes.router.routes:
            if (
                isinstance(route, APIRoute)
                and route.path == path
                and method in (route.methods or ())
            ):
                return route
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "GET" and len(path) == 75:
                found = AGENT_PATH.fullmatch(path)
                if found is not None:
                    await self._read(scope, receive, send, found.group(1))
                    return
            elif method == "POST" and path == REGISTRATION_PATH:
                await self._register(scope, receive, send)
                return
        await self.fallback(scope, receive, send)

    def _enter(self, scope: Scope, route: APIRoute | None) -> None:
        scope["app"] = self.app
        if route is not None:
            scope["route"] = route  # the metrics label is the route template

    async def _read(self, scope: Scope, receive: Receive, send: Send, agent_id: str) -> None:
        if self._read_route is None:
            self._read_route = self._route("/v1/agents/{agent_id}", "GET")
        self._enter(scope, self._read_route)
        request = Request(scope, receive)
        try:
            response = await agent_routes.get_agent(agent_id, request)
        except DukenetError as exc:
            response = dukenet_error_response(exc)
        await response(scope, receive, send)

    async def _register(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await _read_body(receive)
        replay = _replaying(raw, receive)
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), None)
        body = None
        if raw and _is_json(content_type):
            try:
                payload = json.loads(raw)
                body = Registration.model_validate(payload)
            except (ValueError, ValidationError, DukenetError):  # validators raise these
                body = None
        if body is None:  # FastAPI gives the exact 400/422 it always gave
            await self.fallback(scope, replay, send)
            return
        if self._register_route is None:
            self._register_route = self._route(REGISTRATION_PATH, "POST")
        self._enter(scope, self._register_route)
        request = Request(scope, replay)
        try:
            response = await agent_routes.registration(request, payload, body)
        except DukenetError as exc:
            response = dukenet_error_response(exc)
        await response(scope, replay, send)
