"""Shared pieces of the orchestration tests (this module holds no tests itself).

* ``FakeAgent``: a real HTTP server (aiohttp, on a localhost port) that verifies the
  network's RFC 9421 signature on every call, records each call, and answers with whatever
  the test scripts for it (output, errors, delays, 202 + a later result).
* ``add_agent``: an agent and its capabilities as rows (ACTIVE, fresh heartbeat), so a test
  controls trust, price and latency exactly.
* fixtures: the API in-process (no embedded worker), a funded creator with a session, and
  workers started and stopped inside the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from dukenet import crypto
from dukenet.api.app import create_app
from dukenet.config import Settings
from dukenet.errors import InvalidSignature
from dukenet.httpsig import verify_request
from dukenet.market import ledger
from dukenet.orchestration.worker import Worker
from dukenet.runtime import Services, open_services
from dukenet.sdk import AsyncClient
from tests.conftest import free_port

BASE_URL = "http://dukenet.test"
ANY_OBJECT: dict[str, Any] = {"type": "object"}
Behaviour = Callable[[dict[str, Any]], Awaitable[web.StreamResponse]]


def fast_settings(settings: Settings, **overrides: Any) -> Settings:
    """Settings with short delays so retries, leases and sweeps happen within a test."""
    values: dict[str, Any] = {
        "embedded_worker": False,
        "retry_base_delay": 0.05,
        "retry_max_delay": 1.0,
        "worker_poll_interval": 0.3,
        "maintenance_interval": 0.2,
        "worker_lease_seconds": 3.0,
        "attempt_timeout_floor": 1.0,
        "worker_shutdown_grace": 2.0,
        "rate_limits": "write=none,read=none,auth=none",
    }
    values.update(overrides)
    return settings.model_copy(update=values)


@dataclass
class Call:
    """One call an agent received (after its signature verified)."""

    capability: str
    subtask_id: str
    task_id: str
    attempt: int
    input: Any
    deadline: str
    at: float = field(default_factory=time.monotonic)


class FakeAgent:
    """An agent HTTP server whose answers the test scripts per capability."""

    def __init__(self, network_public_key_b64: str) -> None:
        self.public_key = crypto.load_public_key(network_public_key_b64)
        self.calls: list[Call] = []
        self.rejected_signatures = 0
        self.behaviours: dict[str, Behaviour] = {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/invoke"
        self._nonces: set[str] = set()
        self._runner: web.AppRunner | None = None

    def on(self, capability: str, behaviour: Behaviour) -> None:
        """Answer calls of ``capability`` with ``behaviour(call body)``."""
        self.behaviours[capability] = behaviour

    def calls_of(self, capability: str) -> list[Call]:
        """The calls received for ``capability``."""
        return [c for c in self.calls if c.capability == capability]

    def _nonce_seen(self, nonce: str, remember_until: int) -> bool:
        if nonce in self._nonces:
            return True
        self._nonces.add(nonce)
        return False

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            verify_request(
                method=request.method,
                url=self.url,
                headers=dict(request.headers),
                body=body,
                public_key=self.public_key,
                nonce_seen=self._nonce_seen,
            )
        except InvalidSignature as exc:
            self.rejected_signatures += 1
            return web.json_response({"code": exc.code, "detail": exc.detail}, status=401)
        payload = json.loads(body)
        self.calls.append(
            Call(
                payload["capability"],
                payload["subtask_id"],
                payload["task_id"],
                payload["attempt"],
                payload["input"],
                payload["deadline"],
            )
        )
        behaviour = self.behaviours.get(payload["capability"])
        if behaviour is None:
            return web.json_response({"detail": "no such capability"}, status=404)
        return await behaviour(payload)

    async def start(self) -> None:
        """Listen on the agent's port."""
        app = web.Application()
        app.router.add_post("/invoke", self._invoke)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Stop listening (in-flight calls are cut)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def answer(output: Any, *, cost: str | None = None, delay: float = 0.0) -> Behaviour:
    """A behaviour answering ``200 {"output": output}`` (output may be a function of input)."""

    async def behaviour(payload: dict[str, Any]) -> web.StreamResponse:
        if delay:
            await asyncio.sleep(delay)
        value = output(payload["input"]) if callable(output) else output
        body: dict[str, Any] = {"output": value}
        if cost is not None:
            body["cost"] = cost
        return web.json_response(body)

    return behaviour


def status(
    code: int, detail: str = "scripted failure", *, delay: float = 0.0, **headers: str
) -> Behaviour:
    """A behaviour answering with an error status (after ``delay`` seconds)."""

    async def behaviour(payload: dict[str, Any]) -> web.StreamResponse:
        if delay:
            await asyncio.sleep(delay)
        return web.json_response({"detail": detail}, status=code, headers=headers)

    return behaviour


def sequence(*behaviours: Behaviour) -> Behaviour:
    """Each call takes the next behaviour; the last one repeats."""
    remaining = list(behaviours)

    async def behaviour(payload: dict[str, Any]) -> web.StreamResponse:
        current = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return await current(payload)

    return behaviour


async def add_agent(
    services: Services,
    endpoint_url: str | None,
    capabilities: list[dict[str, Any]],
    *,
    trust: str = "50",
    status: str = "ACTIVE",
    heartbeat_age: float = 0.0,
    key: Ed25519PrivateKey | None = None,
) -> str:
    """An agent row with capability rows; each capability dict needs ``name`` and may set
    ``price``, ``latency_p99_ms``, ``input_schema``, ``output_schema``, ``deprecated``.
    With ``key`` the row carries that key, so an SDK client holding it can log in."""
    public_key = crypto.public_key_b64(key) if key else secrets.token_urlsafe(32)
    agent_id = crypto.agent_id_for(public_key) if key else secrets.token_hex(32)
    async with services.db.transaction() as conn:
        await conn.execute(
            "INSERT INTO agents (agent_id, public_key, display_name, endpoint_url, status,"
            " trust_score, last_heartbeat)"
            " VALUES ($1, $2, $3, $4, $5, $6, NOW() - make_interval(secs => $7))",
            agent_id,
            public_key,
            f"agent {agent_id[:8]}",
            endpoint_url,
            status,
            Decimal(trust),
            heartbeat_age,
        )
        for spec in capabilities:
            price = Decimal(str(spec.get("price", "0")))
            await conn.execute(
                "INSERT INTO agent_capabilities (capability_id, agent_id, name, version,"
                " input_schema, output_schema, deprecated, pricing_model, price,"
                " latency_p99_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                hashlib.sha256(f"{agent_id}:{spec['name']}:1.0.0".encode()).hexdigest(),
                agent_id,
                spec["name"],
                "1.0.0",
                spec.get("input_schema", True),
                spec.get("output_schema", True),
                spec.get("deprecated", False),
                "per_call" if price > 0 else "free",
                price,
                spec.get("latency_p99_ms", 500),
            )
    return agent_id


async def fund(services: Services, agent_id: str, amount: str) -> None:
    """Deposit through the ledger."""
    async with services.db.transaction() as conn:
        await ledger.deposit(
            conn, agent_id, amount=Decimal(amount), currency="USD", payment_method="test"
        )


async def balances(services: Services, agent_id: str) -> tuple[Decimal, Decimal]:
    """(available, held) in USD."""
    async with services.db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT available, held FROM balances WHERE agent_id = $1 AND currency = 'USD'",
            agent_id,
        )
    return (row["available"], row["held"]) if row else (Decimal(0), Decimal(0))


async def wait_for(
    check: Callable[[], Awaitable[bool]], *, within: float = 20.0, interval: float = 0.05
) -> None:
    """Poll ``check`` until it holds (AssertionError after ``within`` seconds)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {within}s")


@dataclass
class Network:
    """The API in-process, its services, a funded creator and a way to start workers."""

    app: FastAPI
    services: Services
    http: httpx.AsyncClient
    creator: AsyncClient
    settings: Settings
    workers: list[tuple[Worker, asyncio.Task[None]]] = field(default_factory=list)
    agents: list[FakeAgent] = field(default_factory=list)
    clients: list[AsyncClient] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        """Headers with the creator's session (refreshed by the SDK client as needed)."""
        assert self.creator.session is not None
        return {"authorization": f"Bearer {self.creator.session.token}"}

    def client_for(self, key: Ed25519PrivateKey) -> AsyncClient:
        """An SDK client (in-process) holding ``key``; closed with the network."""
        client = AsyncClient(BASE_URL, key=key, transport=httpx.ASGITransport(app=self.app))
        self.clients.append(client)
        return client

    async def agent(self) -> FakeAgent:
        """A started fake agent server."""
        agent = FakeAgent(crypto.public_key_b64(self.services.network_key))
        await agent.start()
        self.agents.append(agent)
        return agent

    def start_worker(self, concurrency: int = 8) -> Worker:
        """A worker running in this event loop until the test ends."""
        worker = Worker(self.services, concurrency=concurrency)
        self.workers.append((worker, asyncio.create_task(worker.run())))
        return worker

    async def submit(self, spec: dict[str, Any], **headers: str) -> httpx.Response:
        """POST /v1/tasks as the creator."""
        await self.creator.session_token()
        return await self.http.post("/v1/tasks", json=spec, headers={**self.auth, **headers})

    async def task(self, task_id: str) -> dict[str, Any]:
        """GET /v1/tasks/{id} as the creator."""
        response = await self.http.get(f"/v1/tasks/{task_id}", headers=self.auth)
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document

    async def wait_done(self, task_id: str, within: float = 20.0) -> dict[str, Any]:
        """The task once it ended."""
        found: dict[str, Any] = {}

        async def done() -> bool:
            found.update(await self.task(task_id))
            return found["status"] in ("COMPLETED", "FAILED", "CANCELLED")

        await wait_for(done, within=within)
        return found

    async def subtasks(self, task_id: str) -> dict[str, dict[str, Any]]:
        """The task's subtasks by name."""
        response = await self.http.get(f"/v1/tasks/{task_id}/subtasks", headers=self.auth)
        assert response.status_code == 200, response.text
        return {s["name"]: s for s in response.json()["items"]}

    async def events(self, task_id: str) -> list[dict[str, Any]]:
        """Every event of the task (JSON pages)."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            response = await self.http.get(
                f"/v1/tasks/{task_id}/events", params=params, headers=self.auth
            )
            assert response.status_code == 200, response.text
            page = response.json()
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                return items


@pytest.fixture
async def network(settings: Settings) -> AsyncIterator[Network]:
    """The API (no embedded worker), a creator with 100 USD, workers stopped at the end."""
    configured = fast_settings(settings)
    app = create_app(configured)
    async with (
        app.router.lifespan_context(app),
        open_services(configured) as services,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http,
        AsyncClient(
            BASE_URL, key=crypto.generate_private_key(), transport=httpx.ASGITransport(app=app)
        ) as creator,
    ):
        async with services.db.transaction() as conn:
            # Tests of a module share its database: what earlier tests left must not run.
            await conn.execute("UPDATE agents SET status = 'INACTIVE'")
            await conn.execute(
                "UPDATE subtasks SET status = 'CANCELLED'"
                " WHERE status IN ('PENDING', 'READY', 'ASSIGNED', 'RUNNING')"
            )
            await conn.execute(
                "UPDATE tasks SET status = 'CANCELLED' WHERE status IN ('PENDING', 'EXECUTING')"
            )
        await creator.register("Task creator")
        await creator.session_token()
        await fund(services, creator.agent_id, "100")
        net = Network(app, services, http, creator, configured)
        try:
            yield net
        finally:
            for worker, _ in net.workers:
                worker.stop()
            for _, task in net.workers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, timeout=15)
            for agent in net.agents:
                await agent.stop()
            for client in net.clients:
                await client.aclose()
