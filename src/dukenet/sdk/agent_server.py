"""``AgentServer``: host capabilities on DukeNET as decorated async functions.

    agent = AgentServer("Summit Summaries", network_url="http://127.0.0.1:8080",
                        key="summit_key.pem")

    @agent.capability("text.summarize", input_schema={...}, output_schema={...},
                      price="0.01", latency_p99_ms=2000)
    async def summarize(input: dict[str, Any]) -> dict[str, Any]:
        return {"summary": input["text"][:100]}

    agent.run(host="127.0.0.1", port=9001)

On start the server fetches the network's public key (``GET /v1/network``), registers
its key as an agent (or updates its profile when already registered), publishes its
capabilities (deprecating ones it no longer serves), and heartbeats in the background.

The network invokes ``POST {endpoint_url}`` (``/invoke``) with
``{"subtask_id", "task_id", "attempt", "capability", "input", "deadline"}``, signed with
RFC 9421 (``dukenet.httpsig``). Every invocation is verified before anything else:
a bad signature, a stale ``created`` or a reused nonce is a 401. Then the input is
validated against the capability's ``input_schema`` (422), the function runs (bounded by
the ``deadline``) and the answer is ``200 {"output": ..., "cost"?}``. A capability marked
``long_running=True`` answers ``202`` at once and posts its result later to
``POST /v1/subtasks/{id}/result`` with its session and ``attempt``.

Errors a capability raises: ``CapabilityError(retryable=False)`` is a 422 (the network
does not retry), ``retryable=True`` a 503; any other exception is a 500 (retried).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jsonschema
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dukenet import crypto
from dukenet.errors import InvalidSignature
from dukenet.httpsig import verify_request
from dukenet.sdk.client import AsyncClient
from dukenet.sdk.errors import AgentNotFound, APIError
from dukenet.sdk.tasks import NetworkInfo

log = logging.getLogger(__name__)

INVOKE_PATH = "/invoke"
PROBLEM_JSON = "application/problem+json"
CapabilityFunction = Callable[..., Awaitable[Any]]
F = TypeVar("F", bound=CapabilityFunction)


@dataclass(frozen=True)
class Invocation:
    """What the network asked for: pass a second parameter to a capability to receive it."""

    subtask_id: str
    task_id: str
    attempt: int
    capability: str
    deadline: datetime | None


@dataclass(frozen=True)
class Result:
    """A capability's output with the cost actually charged (at most the published price)."""

    output: Any
    cost: Decimal | str | None = None


class CapabilityError(Exception):
    """A capability could not do the work. ``retryable`` tells the network to try again
    (possibly with another agent) rather than give up on the subtask."""

    def __init__(
        self, message: str, *, code: str = "CAPABILITY_FAILED", retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable


@dataclass
class HostedCapability:
    """A capability this server hosts: its published description and the function."""

    name: str
    function: CapabilityFunction
    input_schema: dict[str, Any] | bool
    output_schema: dict[str, Any] | bool
    version: str = "1.0.0"
    description: str | None = None
    price: Decimal = Decimal("0")
    currency: str = "USD"
    latency_p99_ms: int | None = None
    availability_percent: float | None = None
    long_running: bool = False
    wants_invocation: bool = False
    validator: jsonschema.protocols.Validator = field(init=False)

    def __post_init__(self) -> None:
        validator_class = jsonschema.validators.validator_for(
            self.input_schema, default=jsonschema.Draft202012Validator
        )
        validator_class.check_schema(self.input_schema)
        self.validator = validator_class(self.input_schema)

    def spec(self) -> dict[str, Any]:
        """The capability as the registry publishes it."""
        spec: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
            "pricing_model": "per_call" if self.price > 0 else "free",
            "price": f"{self.price:.4f}",
            "currency": self.currency,
        }
        optional = {
            "description": self.description,
            "latency_p99_ms": self.latency_p99_ms,
            "availability_percent": self.availability_percent,
        }
        spec.update({k: v for k, v in optional.items() if v is not None})
        return spec


class NonceCache:
    """Nonces of accepted signatures, each remembered until its signature could not be
    accepted anyway. Enough for one agent process; share a store across replicas."""

    def __init__(self) -> None:
        self._until: dict[str, int] = {}
        self._next_prune = 0.0

    def seen(self, nonce: str, remember_until: int) -> bool:
        """True when ``nonce`` was used before; otherwise remember it."""
        now = time.time()
        if now >= self._next_prune:
            self._until = {n: t for n, t in self._until.items() if t >= now}
            self._next_prune = now + 30
        if nonce in self._until:
            return True
        self._until[nonce] = remember_until
        return False


def _problem(status: int, code: str, detail: str) -> JSONResponse:
    body = {"title": code.replace("_", " ").capitalize(), "status": status, "code": code}
    return JSONResponse({**body, "detail": detail}, status_code=status, media_type=PROBLEM_JSON)


def _parse_deadline(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        deadline = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return deadline if deadline.tzinfo else deadline.replace(tzinfo=UTC)


def _load_key(key: Ed25519PrivateKey | str | Path) -> Ed25519PrivateKey:
    """A key object, or a key file: loaded when it exists, generated (mode 0600) otherwise."""
    if isinstance(key, Ed25519PrivateKey):
        return key
    return crypto.load_or_create_private_key(Path(key))


class AgentServer:
    """An agent: capabilities as async functions behind one signed ``POST /invoke`` route."""

    def __init__(
        self,
        name: str,
        *,
        network_url: str,
        key: Ed25519PrivateKey | str | Path,
        endpoint_url: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
        version: str | None = None,
        metadata: dict[str, Any] | None = None,
        owner_address: str | None = None,
        heartbeat_interval: float = 30.0,
        signature_max_age: int = 300,
        network_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.network_url = network_url.rstrip("/")
        self.key = _load_key(key)
        self.agent_id = crypto.agent_id_for(self.key.public_key())
        self.endpoint_url = endpoint_url
        self.description = description
        self.tags = tags
        self.version = version
        self.metadata = metadata
        self.owner_address = owner_address
        self.heartbeat_interval = heartbeat_interval
        self.signature_max_age = signature_max_age
        self.network_transport = network_transport
        self.capabilities: dict[str, HostedCapability] = {}
        self.nonces = NonceCache()
        self.network: NetworkInfo | None = None
        self.client: AsyncClient | None = None
        self._network_key: Ed25519PublicKey | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._app: Starlette | None = None

    # -- declaring capabilities ------------------------------------------------------

    def capability(
        self,
        name: str,
        *,
        input_schema: dict[str, Any] | bool,
        output_schema: dict[str, Any] | bool,
        price: str | Decimal = "0",
        currency: str = "USD",
        version: str = "1.0.0",
        description: str | None = None,
        latency_p99_ms: int | None = None,
        availability_percent: float | None = None,
        long_running: bool = False,
    ) -> Callable[[F], F]:
        """Host the decorated ``async def f(input[, invocation])`` as capability ``name``.

        ``f`` returns the output (or a ``Result`` with a lower ``cost``); ``price`` is a
        decimal string charged per call (``"0"`` publishes the capability as free).
        """
        try:
            amount = Decimal(str(price))
        except InvalidOperation as exc:
            raise ValueError(f"price {price!r} is not a decimal") from exc

        def decorate(function: F) -> F:
            hosted_function: CapabilityFunction = function
            if not inspect.iscoroutinefunction(hosted_function):
                raise TypeError(f"capability {name!r} must be an async function")
            if name in self.capabilities:
                raise ValueError(f"capability {name!r} is already hosted")
            self.capabilities[name] = HostedCapability(
                name=name,
                function=hosted_function,
                input_schema=input_schema,
                output_schema=output_schema,
                version=version,
                description=description or inspect.getdoc(function),
                price=amount,
                currency=currency,
                latency_p99_ms=latency_p99_ms,
                availability_percent=availability_percent,
                long_running=long_running,
                wants_invocation=len(inspect.signature(function).parameters) >= 2,
            )
            return function

        return decorate

    # -- the ASGI app ------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        """The ASGI app; its lifespan joins the network and heartbeats."""
        if self._app is None:
            self._app = Starlette(
                routes=[
                    Route(INVOKE_PATH, self._invoke, methods=["POST"]),
                    Route("/healthz", self._health, methods=["GET"]),
                ],
                lifespan=self._lifespan,
            )
        return self._app

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def start(self) -> None:
        """Join the network: fetch its key, register or update, publish, heartbeat."""
        self.client = AsyncClient(self.network_url, key=self.key, transport=self.network_transport)
        self.network = await self._fetch_network()
        self._network_key = crypto.load_public_key(self.network.public_key)
        await self._register()
        await self.client.heartbeat()
        self._spawn(self._heartbeat_loop())
        log.info("agent %s (%s) joined %s", self.name, self.agent_id, self.network_url)

    async def stop(self) -> None:
        """Stop heartbeating and cancel long jobs still running; close the client."""
        for job in list(self._jobs):
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    def run(self, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "warning") -> None:
        """Serve with uvicorn until interrupted; the endpoint defaults to this host and port."""
        if self.endpoint_url is None:
            if host in ("0.0.0.0", "::", ""):
                raise ValueError("binding every interface: pass the public endpoint_url")
            self.endpoint_url = f"http://{host}:{port}{INVOKE_PATH}"
        uvicorn.run(self.app, host=host, port=port, log_level=log_level, access_log=False)

    # -- joining the network -----------------------------------------------------------

    async def _fetch_network(self, attempts: int = 20) -> NetworkInfo:
        assert self.client is not None
        for attempt in range(attempts):
            try:
                return await self.client.network_info()
            except httpx.TransportError:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(min(0.25 * 2**attempt, 2.0))
        raise AssertionError("unreachable")

    async def _register(self) -> None:
        assert self.client is not None
        specs = {c.name: c.spec() for c in self.capabilities.values()}
        try:
            await self.client.get_agent()
        except AgentNotFound:
            await self.client.register(
                self.name,
                description=self.description,
                endpoint_url=self.endpoint_url,
                owner_address=self.owner_address,
                version=self.version,
                metadata=self.metadata,
                tags=self.tags,
                capabilities=list(specs.values()),
            )
            return
        await self.client.update_agent(
            display_name=self.name,
            description=self.description,
            endpoint_url=self.endpoint_url,
            owner_address=self.owner_address,
            version=self.version,
            metadata=self.metadata,
        )
        if self.tags is not None:
            await self.client.set_tags(self.tags)
        await self._publish(specs)

    async def _publish(self, specs: dict[str, dict[str, Any]]) -> None:
        """Make the registry match what this server hosts now."""
        assert self.client is not None
        published = []
        cursor: str | None = None
        while True:
            page = await self.client.list_capabilities(cursor=cursor)
            published.extend(page.items)
            cursor = page.next_cursor
            if not cursor:
                break
        for capability in published:
            spec = specs.get(capability.name)
            if spec is None or spec["version"] != capability.version:
                if not capability.deprecated:
                    await self.client.deprecate_capability(capability.capability_id)
                continue
            changes = {k: v for k, v in spec.items() if k not in ("name", "version")}
            await self.client.update_capability(
                capability.capability_id, deprecated=False, **changes
            )
        current = {(c.name, c.version) for c in published}
        for spec in specs.values():
            if (spec["name"], spec["version"]) not in current:
                await self.client.add_capability(spec)

    async def _heartbeat_loop(self) -> None:
        assert self.client is not None
        while True:
            await asyncio.sleep(self.heartbeat_interval * random.uniform(0.9, 1.0))
            try:
                await self.client.heartbeat()
            except (APIError, httpx.TransportError) as exc:
                log.warning("heartbeat failed (will retry): %s", exc)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        job = asyncio.ensure_future(coroutine)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    # -- serving invocations -----------------------------------------------------------

    async def _health(self, request: Request) -> Response:
        ready = self._network_key is not None
        return JSONResponse({"agent_id": self.agent_id, "ready": ready}, 200 if ready else 503)

    def _verified_url(self, request: Request) -> str:
        """The URL the signature must cover: the registered endpoint the network calls.

        Using the registered endpoint (not the Host header and path this process sees)
        keeps verification right behind proxies that rewrite them, and still refuses a
        request signed for another agent's address.
        """
        return self.endpoint_url or str(request.url)

    async def _invoke(self, request: Request) -> Response:
        if self._network_key is None:
            return _problem(503, "NOT_READY", "the agent has not joined the network yet")
        body = await request.body()
        try:
            verify_request(
                method=request.method,
                url=self._verified_url(request),
                headers=request.headers,
                body=body,
                public_key=self._network_key,
                nonce_seen=self.nonces.seen,
                max_age=self.signature_max_age,
                key_id=self.network.network_id if self.network else None,
            )
        except InvalidSignature as exc:
            log.warning("refused an invocation: %s", exc.detail)
            return _problem(401, exc.code, exc.detail)
        try:
            call = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _problem(400, "MALFORMED_JSON", "the request body is not valid JSON")
        if not isinstance(call, dict) or not isinstance(call.get("capability"), str):
            return _problem(400, "BAD_REQUEST", "the body must name a capability")
        hosted = self.capabilities.get(call["capability"])
        if hosted is None:
            return _problem(404, "CAPABILITY_NOT_FOUND", f"no capability {call['capability']!r}")
        payload = call.get("input")
        errors = sorted(hosted.validator.iter_errors(payload), key=lambda e: list(e.path))
        if errors:
            where = "/" + "/".join(str(p) for p in errors[0].absolute_path)
            return _problem(422, "SCHEMA_INVALID", f"input{where}: {errors[0].message}")
        invocation = Invocation(
            subtask_id=str(call.get("subtask_id", "")),
            task_id=str(call.get("task_id", "")),
            attempt=int(call.get("attempt") or 0),
            capability=hosted.name,
            deadline=_parse_deadline(call.get("deadline")),
        )
        if hosted.long_running:
            self._spawn(self._run_long_job(hosted, payload, invocation))
            return JSONResponse({"accepted": True, "subtask_id": invocation.subtask_id}, 202)
        try:
            result = await self._call(hosted, payload, invocation)
        except CapabilityError as exc:
            return _problem(503 if exc.retryable else 422, exc.code, exc.message)
        except TimeoutError:
            return _problem(504, "DEADLINE_EXCEEDED", "the subtask deadline passed")
        except Exception:
            log.exception("capability %s failed", hosted.name)
            return _problem(500, "CAPABILITY_CRASHED", f"capability {hosted.name} raised")
        return JSONResponse(self._answer(result))

    async def _call(self, hosted: HostedCapability, payload: Any, invocation: Invocation) -> Any:
        """Run the function, bounded by the subtask's deadline."""
        arguments = (payload, invocation) if hosted.wants_invocation else (payload,)
        remaining = None
        if invocation.deadline is not None:
            remaining = max((invocation.deadline - datetime.now(UTC)).total_seconds(), 0.0)
        async with asyncio.timeout(remaining):
            return await hosted.function(*arguments)

    @staticmethod
    def _answer(result: Any) -> dict[str, Any]:
        if isinstance(result, Result):
            answer: dict[str, Any] = {"output": result.output}
            if result.cost is not None:
                answer["cost"] = str(result.cost)
            return answer
        return {"output": result}

    async def _run_long_job(
        self, hosted: HostedCapability, payload: Any, invocation: Invocation
    ) -> None:
        """Do the work of a 202-accepted call, then post its result (or error)."""
        result: dict[str, Any]
        try:
            result = self._answer(await self._call(hosted, payload, invocation))
        except CapabilityError as exc:
            result = {"error": f"{exc.code}: {exc.message}", "retryable": exc.retryable}
        except TimeoutError:
            result = {"error": "DEADLINE_EXCEEDED: the subtask deadline passed"}
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("long job %s failed", invocation.subtask_id)
            result = {"error": f"CAPABILITY_CRASHED: {exc}"}
        await self._post_result(invocation, result)

    async def _post_result(self, invocation: Invocation, result: dict[str, Any]) -> None:
        """Deliver a long job's result, retrying while the network is unreachable or busy."""
        assert self.client is not None
        for attempt in range(6):
            try:
                await self.client.post_subtask_result(
                    invocation.subtask_id,
                    attempt=invocation.attempt,
                    output=result.get("output"),
                    cost=result.get("cost"),
                    error=result.get("error"),
                    retryable=result.get("retryable", True),
                )
                return
            except httpx.TransportError as exc:
                log.warning("posting result of %s failed: %s", invocation.subtask_id, exc)
            except APIError as exc:
                if exc.status < 500 and exc.status != 429:
                    log.warning("result of %s refused: %s", invocation.subtask_id, exc)
                    return
            await asyncio.sleep(min(0.5 * 2**attempt, 8.0))
        log.error("gave up posting the result of %s", invocation.subtask_id)
