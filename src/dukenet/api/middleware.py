"""ASGI middleware: request body size limit (413) and Prometheus request metrics, in one layer."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dukenet.api.problems import PROBLEM_JSON

REQUESTS = Counter("dukenet_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "dukenet_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def _problem_413(limit: int) -> bytes:
    return (
        b'{"type":"https://dukenet.dev/problems/payload-too-large","title":"Payload too large",'
        b'"status":413,"detail":"request body exceeds '
        + str(limit).encode()
        + b' bytes","code":"PAYLOAD_TOO_LARGE"}'
    )


class RequestEdge:
    """The one ASGI layer in front of every HTTP request (one layer, not two, because each
    layer costs every request a call and a wrapped ``send``):

    * refuses bodies above ``limit`` bytes with 413, by Content-Length or while streaming
      (only requests that declare a body get their ``receive`` wrapped; a body cut off
      mid-stream reads as a disconnect, so no route runs on its first part);
    * counts requests and times them per route template (not per concrete path).
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        has_body = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await self._reject(send)
                    self._observe(scope, 413, started)
                    return
                has_body = has_body or declared > 0
            elif name == b"transfer-encoding":
                has_body = True
        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # The body ends here as if the client had gone: no route ever runs on
                    # what arrived so far (it may itself be valid JSON). Frameworks turn
                    # that into their own 400, so remember the breach and replace whatever
                    # response follows.
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def edge_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                if too_large:
                    status = 413
                    await self._reject(send)
                    return
                status = message["status"]
            if not too_large:
                await send(message)

        try:
            await self.app(scope, limited_receive if has_body else receive, edge_send)
        finally:
            self._observe(scope, status, started)

    @staticmethod
    def _observe(scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "GET")
        REQUESTS.labels(method, template, str(status)).inc()
        LATENCY.labels(method, template).observe(time.perf_counter() - started)

    async def _reject(self, send: Send) -> None:
        body = _problem_413(self.limit)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
